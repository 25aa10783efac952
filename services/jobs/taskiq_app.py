"""The broker as a module-level object, for taskiq's own CLI: `taskiq worker services.jobs.taskiq_app:broker`.

`python -m services.jobs.worker` is the usual way to run workers (graceful stop, metrics, --queues);
this module exists so Switchboard's queues also run under a stock `taskiq worker`. Settings come from
the environment, as for every process.
"""

from services.jobs.broker import SwitchboardBroker
from services.jobs.catalog import import_task_modules, register_tasks
from services.jobs.queues import PolicyBook
from services.jobs.settings import WorkerSettings
from services.jobs.store import JobStore
from services.runtime.redis_mux import RedisMux
from services.runtime.redis_pool import create_redis
from services.runtime.settings import load_settings

_settings = load_settings(WorkerSettings)
broker = SwitchboardBroker(
    JobStore(
        create_redis(_settings.redis),
        RedisMux(_settings.redis),
        prefix=_settings.jobs_key_prefix,
        max_words_per_job=_settings.search_max_words_per_job,
        log_max_lines=_settings.job_log_max_lines,
        log_max_line_chars=_settings.job_log_max_line_chars,
    ),
    PolicyBook(),
    queues=_settings.queue_list,
    maintenance_interval_seconds=_settings.maintenance_interval_seconds,
    max_payload_bytes=_settings.max_payload_bytes,
    max_result_bytes=_settings.max_result_bytes,
    heartbeat_interval_seconds=_settings.heartbeat_interval_seconds,
)
import_task_modules(_settings.task_module_list)
register_tasks(broker, diagnostics_enabled=_settings.diagnostics_enabled)
