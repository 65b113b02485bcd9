"""Loaded by the LiteLLM proxy in the gateway tests (not by pytest): an auth hook that
accepts exactly one key and answers 401 otherwise, and a streaming model that answers
every request with a little text and one tool call, so /v1/messages streams real
Anthropic SSE (message_start ... input_json_delta ... message_stop) with no upstream."""

import json
import os

from fastapi import HTTPException, Request
from litellm.llms.custom_llm import CustomLLM
from litellm.proxy._types import UserAPIKeyAuth
from litellm.types.utils import GenericStreamingChunk, ModelResponse

EXPECTED = os.environ["GATEWAY_TEST_KEY"]


async def user_api_key_auth(request: Request, api_key: str) -> UserAPIKeyAuth:
    # LiteLLM hands over the key from Authorization: Bearer or x-api-key alike.
    key = api_key.removeprefix("Bearer ").strip() if api_key else ""
    if key != EXPECTED:
        raise HTTPException(status_code=401, detail="invalid gateway key")
    return UserAPIKeyAuth(api_key=key)


def _chunks():
    yield GenericStreamingChunk(text="Checking the weather. ", tool_use=None, is_finished=False,
                                finish_reason="", usage=None, index=0)
    arguments = json.dumps({"city": "Paris"})
    for i, part in enumerate((arguments[:8], arguments[8:])):
        yield GenericStreamingChunk(
            text="", is_finished=False, finish_reason="", usage=None, index=0,
            tool_use={"id": "toolu_01" if i == 0 else None, "type": "function", "index": 0,
                      "function": {"name": "get_weather" if i == 0 else None, "arguments": part}})
    yield GenericStreamingChunk(text="", tool_use=None, is_finished=True, finish_reason="tool_calls",
                                usage={"prompt_tokens": 10, "completion_tokens": 5,
                                       "total_tokens": 15}, index=0)


class StreamingModel(CustomLLM):
    def completion(self, *args, **kwargs) -> ModelResponse:
        import litellm

        return litellm.completion(model="gpt-3.5-turbo", messages=[{"role": "user", "content": "x"}],
                                  mock_response="Checking the weather.")

    async def acompletion(self, *args, **kwargs) -> ModelResponse:
        return self.completion()

    def streaming(self, *args, **kwargs):
        yield from _chunks()

    async def astreaming(self, *args, **kwargs):
        for chunk in _chunks():
            yield chunk


streaming_model = StreamingModel()
