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


def entry_files(env) -> dict[str, bytes]:
    """The cache entry files, byte for byte (to prove a run left them alone)."""
    files = {}
    for path in sorted(glob.glob(os.path.join(env["CREDHELPER_CACHE_DIR"], "aws-*.v1.json"))):
        with open(path, "rb") as f:
            files[path] = f.read()
    return files


def forced(env) -> dict:
    """``env`` for a run that must ask AWS although a valid entry is cached: min_validity
    longer than any token's lifetime (15 min at most), so the entry is never fresh
    enough to hand out, but it stays valid, so stale-if-error may serve it."""
    return dict(env, CREDHELPER_AWS_MIN_VALIDITY="20m")


def assert_stale(proc, token: str, *phrases: str) -> None:
    """The cached ``token`` served (exit 0, exactly it on stdout) with one warning that
    names the cause; no error line."""
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == (token + "\n").encode(), proc.stdout
    assert "Traceback" not in proc.stderr
    assert ": error: " not in proc.stderr, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if ": warning: " in line]
    assert len(warnings) == 1 and "serving the cached credential" in warnings[0], proc.stderr
    for phrase in phrases:
        assert phrase in warnings[0], (phrase, proc.stderr)
    assert_clean(proc.stderr)


def sts_error(status: int, code: str, message: str, retry_after: str | None = None):
    """A FaultProxy answer in STS's own error format (AWS query protocol, XML)."""
    from faultproxy import Fault

    body = ('<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error>'
            f"<Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error>"
            "<RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId></ErrorResponse>")
    return Fault.status(status, retry_after=retry_after, body=body.encode(), content_type="text/xml")


def json_error(status: int, code: str, message: str, retry_after: str | None = None):
    """A FaultProxy answer in the AWS JSON protocol's error format (Secrets Manager)."""
    from faultproxy import Fault

    body = json.dumps({"__type": code, "message": message}).encode()
    return Fault.status(status, retry_after=retry_after, body=body,
                        content_type="application/x-amz-json-1.1")
