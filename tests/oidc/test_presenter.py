"""The desktop presenter on each platform, in-process with the process launcher recorded:
the code and URL travel as arguments or variables, never inside script text."""

from __future__ import annotations

import pytest

from credhelper.providers import device_flow

MESSAGE = 'To sign in, open https://idp.example/device and enter the code AB"CD-$(x)'


@pytest.fixture
def spawned(monkeypatch):
    calls = []
    monkeypatch.setattr(device_flow, "_spawn", lambda argv, env=None: calls.append((argv, env)) or True)
    return calls


def test_macos_shows_a_dialog_with_osascript(monkeypatch, spawned):
    monkeypatch.setattr(device_flow.sys, "platform", "darwin")
    assert device_flow.notify(MESSAGE) == "osascript"
    assert device_flow.open_browser("https://idp.example/device?user_code=X")
    (dialog, _), (browser, _) = spawned
    assert dialog[0] == "osascript" and dialog[-1] == MESSAGE
    assert all(MESSAGE not in part for part in dialog[:-1])
    assert browser == ["open", "https://idp.example/device?user_code=X"]


def test_windows_shows_a_message_box_with_powershell(monkeypatch, spawned):
    monkeypatch.setattr(device_flow.sys, "platform", "win32")
    monkeypatch.setattr(device_flow.os, "name", "nt")
    assert device_flow.notify(MESSAGE) == "powershell"
    [(argv, env)] = spawned
    assert argv[0] == "powershell" and MESSAGE not in " ".join(argv)
    assert env["CREDHELPER_PROMPT"] == MESSAGE


def test_linux_prefers_notify_send_then_zenity(monkeypatch, spawned):
    monkeypatch.setattr(device_flow.sys, "platform", "linux")
    monkeypatch.setattr(device_flow.shutil, "which", lambda name: name == "zenity" and "/usr/bin/zenity")
    assert device_flow.notify(MESSAGE) == "zenity"
    monkeypatch.setattr(device_flow.shutil, "which", lambda name: f"/usr/bin/{name}")
    assert device_flow.notify(MESSAGE) == "notify-send"
    monkeypatch.setattr(device_flow.shutil, "which", lambda name: None)
    assert device_flow.notify(MESSAGE) is None


def test_only_web_addresses_are_opened(spawned):
    assert not device_flow.open_browser("file:///etc/passwd")
    assert not device_flow.open_browser("javascript:alert(1)")
    assert spawned == []
