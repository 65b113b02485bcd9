"""Small helpers shared by the AWS tests."""

from __future__ import annotations

import glob
import json
import os

from conftest import CANARY, run

from .conftest import SECRET_CANARY, SESSION_CANARY

CANARIES = (SECRET_CANARY, SESSION_CANARY, CANARY)


def aws(env, *args, **kwargs):
    return run(["credhelper-aws", *args], env, **kwargs)


def write(path: str, text: str) -> str:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    return path


def aws_config(env, text: str) -> str:
    """~/.aws/config of the test's HOME (botocore's default location)."""
    return write(os.path.join(env["HOME"], ".aws", "config"), text)


def aws_credentials(env, text: str) -> str:
    return write(os.path.join(env["HOME"], ".aws", "credentials"), text)


def credhelper_config(env, text: str) -> str:
    """The user config file of credhelper (TOML)."""
    return write(os.path.join(env["XDG_CONFIG_HOME"], "credhelper", "config.toml"), text)


def token_of(proc) -> str:
    """The printed credential: exactly one line, the token and a newline."""
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout.decode()
    assert text.endswith("\n") and text.count("\n") == 1, proc.stdout
    token = text[:-1]
    assert token and token == token.strip()
    return token


def assert_clean(*texts: str) -> None:
    """No credential canary in stderr, --debug, status or doctor output."""
    for text in texts:
        for canary in CANARIES:
            assert canary not in text, f"{canary} leaked: {text}"


def cache_entries(env) -> list[dict]:
    entries = []
    for path in sorted(glob.glob(os.path.join(env["CREDHELPER_CACHE_DIR"], "aws-*.v1.json"))):
        with open(path) as f:
            entries.append(json.load(f))
    return entries
