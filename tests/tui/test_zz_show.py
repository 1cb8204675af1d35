import os
from typing import Any
from tests.tui.conftest import connected, make_app, run_app
from tui.screentext import screen_text

def test_show(recorded) -> None:
    size = tuple(map(int, os.environ["SHOW_SIZE"].split("x")))
    keys = os.environ.get("SHOW_KEYS", "").split()
    async def scenario(pilot: Any) -> None:
        app = await connected(pilot)
        for k in keys:
            if k.startswith("open:"):
                app.open_run(recorded.ids[k[5:]])
            else:
                await pilot.press(k)
            await pilot.pause(1.0)
        await pilot.pause(0.5)
        print("\n" + screen_text(app))
    run_app(make_app(recorded.ws), scenario, size=size)
