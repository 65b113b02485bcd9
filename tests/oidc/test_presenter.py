"""The desktop presenter on each platform, in-process with the process launcher recorded:
the code and URL travel as arguments or variables, never inside script text."""

from __future__ import annotations

import pytest

from credhelper.providers import device_flow

MESSAGE = 'To sign in, open https://idp.example/device and enter the code AB"CD-$(x)'


ENV = {"PATH": "/usr/bin"}
INSTALLED = {"osascript", "open", "powershell", "notify-send", "zenity", "xdg-open"}


@pytest.fixture
def spawned(monkeypatch):
    """The launcher, recorded: tools in ``spawned.installed`` start, others are missing."""

    class Calls(list):
        installed = set(INSTALLED)

    calls = Calls()

    def spawn(argv, env):
        if argv[0] not in calls.installed:
            return False
        calls.append((argv, env))
        return True

    monkeypatch.setattr(device_flow, "_spawn", spawn)
    return calls


def test_macos_shows_a_dialog_with_osascript(monkeypatch, spawned):
    monkeypatch.setattr(device_flow.sys, "platform", "darwin")
    assert device_flow.notify(MESSAGE, ENV) == "osascript"
    assert device_flow.open_browser("https://idp.example/device?user_code=X", ENV)
    (dialog, _), (browser, _) = spawned
    assert dialog[0] == "osascript" and dialog[-1] == MESSAGE
    assert all(MESSAGE not in part for part in dialog[:-1])
    assert browser == ["open", "https://idp.example/device?user_code=X"]


def test_windows_shows_a_message_box_with_powershell(monkeypatch, spawned):
    monkeypatch.setattr(device_flow.sys, "platform", "win32")
    monkeypatch.setattr(device_flow.os, "name", "nt")
    assert device_flow.notify(MESSAGE, ENV) == "powershell"
    [(argv, env)] = spawned
    assert argv[0] == "powershell" and MESSAGE not in " ".join(argv)
    assert env["CREDHELPER_PROMPT"] == MESSAGE and env["PATH"] == ENV["PATH"]


def test_linux_prefers_notify_send_then_zenity(monkeypatch, spawned):
    monkeypatch.setattr(device_flow.sys, "platform", "linux")
    spawned.installed = {"zenity"}
    assert device_flow.notify(MESSAGE, ENV) == "zenity"
    spawned.installed = set(INSTALLED)
    assert device_flow.notify(MESSAGE, ENV) == "notify-send"
    spawned.installed = set()
    assert device_flow.notify(MESSAGE, ENV) is None


def test_only_web_addresses_are_opened(spawned):
    assert not device_flow.open_browser("file:///etc/passwd", ENV)
    assert not device_flow.open_browser("javascript:alert(1)", ENV)
    assert spawned == []
