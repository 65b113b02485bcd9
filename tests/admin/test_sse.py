"""The Anthropic SSE checks of test-gateway, in-process on hand-made event lists: each way
a stream can be wrong is named (the real streams come from LiteLLM in test_gateway.py)."""

from credhelper.gateway import check_event_sequence

GOOD = [
    ("message_start", {"message": {}}),
    ("content_block_start", {"index": 0, "content_block": {"type": "tool_use", "name": "get_weather"}}),
    ("ping", {}),
    ("content_block_delta", {"index": 0, "delta": {"type": "input_json_delta", "partial_json": "{}"}}),
    ("content_block_stop", {"index": 0}),
    ("message_delta", {"delta": {"stop_reason": "tool_use"}}),
    ("message_stop", {}),
]


def problems(events):
    return " | ".join(check_event_sequence(events)[0])


def test_a_good_stream_has_no_problems():
    found, summary = check_event_sequence(GOOD)
    assert found == [] and "1 input_json_delta" in summary and "stop_reason tool_use" in summary


def test_each_broken_stream_is_named():
    assert "not message_start" in problems(GOOD[1:])
    assert "not message_stop" in problems(GOOD[:-1])
    assert "no message_delta" in problems([e for e in GOOD if e[0] != "message_delta"])
    assert "never stopped" in problems([e for e in GOOD if e[0] != "content_block_stop"])
    no_tool = [GOOD[0], ("content_block_start", {"index": 0, "content_block": {"type": "text"}}),
               ("content_block_delta", {"index": 0, "delta": {"type": "text_delta"}})] + GOOD[4:]
    assert "no tool_use block" in problems(no_tool)
    no_json = [e for e in GOOD if e[0] != "content_block_delta"]
    assert "no input_json_delta" in problems(no_json)
    outside = GOOD[:1] + GOOD[3:4] + GOOD[1:]
    assert "outside its block" in problems(outside)
    assert "reported an error" in problems(GOOD[:-1] + [("error", {"error": {"message": "overloaded"}})])
    assert "not JSON" in problems(GOOD[:2] + [("content_block_delta", {"_unparsable": True})] + GOOD[2:])
    assert "missing" in problems([])
