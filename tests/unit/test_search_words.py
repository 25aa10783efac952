"""How payloads, errors and search text become index words: the query side must split exactly like the
side that files the job, or a search misses."""

from __future__ import annotations

from services.jobs.search_index import MAX_WORD_CHARS, error_words, payload_words, words_of


def test_words_are_lower_cased_distinct_and_in_order() -> None:
    assert words_of("Invoice-42 for ACME, invoice again", limit=64) == [
        "invoice",
        "42",
        "for",
        "acme",
        "again",
    ]


def test_single_characters_are_left_out_and_long_words_cut() -> None:
    long = "x" * 100
    assert words_of(f"a b cd {long}", limit=64) == ["cd", "x" * MAX_WORD_CHARS]


def test_payload_keys_and_nested_values_count_but_not_booleans_or_nulls() -> None:
    payload = {
        "customer": {"name": "Acme"},
        "items": [{"sku": "AB-12"}],
        "paid": True,
        "note": None,
        "n": 1234,
    }
    assert payload_words(payload) == [
        "customer",
        "name",
        "acme",
        "items",
        "sku",
        "ab",
        "12",
        "paid",
        "note",
        "1234",
    ]


def test_words_per_job_are_bounded() -> None:
    payload = {"text": " ".join(f"w{n}" for n in range(500))}
    assert len(payload_words(payload, limit=64)) == 64


def test_unicode_words_match_the_query() -> None:
    assert payload_words({"city": "Zürich"}) == ["city", "zürich"]
    assert words_of("ZÜRICH", limit=8) == ["zürich"]


def test_error_words_take_type_and_message() -> None:
    assert error_words("TimeoutError", "upstream took 30s") == ["timeouterror", "upstream", "took", "30s"]
