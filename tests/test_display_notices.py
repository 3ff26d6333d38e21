"""滚动通知: the notices along the foot of the hall display are the hall file's [display]
notices, a setting of the page kept out of the core's rules (controller.config.settings)."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from controller.config.hall import ConfigError, parse_config
from controller.config.settings import DisplaySettings
from tests.browser import TV, open_page
from tests.server import HallProcess
from tests.test_config import minimal_hall_dict

DEMO_NOTICE = "办事遇到困难，请到16号“办不成事”窗口反映"  # config/demo-hall.toml's, not the default


def test_the_notices_are_a_display_setting_with_defaults_and_a_named_key_when_wrong() -> None:
    data = minimal_hall_dict()
    assert parse_config(data).display == DisplaySettings()
    data["display"] = {"notices": ["  请留意叫号  ", "取号后请留意显示屏"]}
    assert parse_config(data).display.notices == ("请留意叫号", "取号后请留意显示屏")
    data["display"] = {"notices": ["请留意叫号", "x" * 201]}
    with pytest.raises(ConfigError) as e:
        parse_config(data)
    assert e.value.key.startswith("display.notices"), e.value.key


def test_the_display_scrolls_the_notices_of_the_halls_own_file(browser, tmp_path) -> None:
    hall = HallProcess(tmp_path, "--clock-start", "09:00")
    hall.start()
    try:
        display = open_page(browser, f"{hall.url}/display", TV)
        expect(display.locator("#notices")).to_contain_text(DEMO_NOTICE)
        assert DEMO_NOTICE not in " ".join(DisplaySettings().notices)
        assert not display.errors
    finally:
        hall.stop()
