"""What every process reads about access control: the admin's credentials, keys, the service identity.

Shared by every service (the call scope checks every RPC), so it is one settings group,
`SWITCHBOARD_*`, nested in each service's settings.
"""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class AccessSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SWITCHBOARD_", extra="ignore", frozen=True)

    admin_user: str = Field(default="admin", min_length=1, max_length=64, pattern=r"^[^:\s]+$")
    admin_password: SecretStr | None = Field(
        default=None, description="The admin's password (12+ characters, not a well-known default)."
    )
    admin_htpasswd_file: str | None = Field(
        default=None, description="An htpasswd file of `{SHA}` entries, instead of user + password."
    )
    require_api_keys: bool = Field(
        default=False, description="Every scoped RPC needs an `x-api-key` with its scope (production)."
    )
    api_keys: SecretStr | None = Field(
        default=None, description="Keys to seed, `name=secret:scope1+scope2,...`."
    )
    api_keys_file: str | None = Field(default=None, description="A file of keys to seed, one a line.")
    service_key: SecretStr | None = Field(
        default=None,
        description="The shared secret services present to each other (`x-switchboard-service-key`).",
    )
    access_key_prefix: str = Field(
        default="sb:access", min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:\-]+$",
        description="Redis key prefix of the API keys and the audit trail.",
    )  # fmt: skip
    keys_refresh_seconds: float = Field(
        default=1.0, gt=0, le=2, description="Re-read of the keys in case a change message was missed."
    )
