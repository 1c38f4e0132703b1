"""Browser check of the UI: Alicia TTS added through Home Assistant's own frontend.

Starts the demo's stack (simulated Sonos speakers, a fresh Home Assistant with the frontend and
HA's sonos integration) but without Alicia, then drives headless Chromium (Debian's package)
with playwright-core (npm, in ``.cache/ui-check``) through ``script/ui_check.js``: log in as
``demo``, Settings → Devices & services → Add integration → Alicia TTS → choose the voice →
submit, and screenshots into ``out/ui/``. Afterwards it checks through the REST API that the
entry is loaded and that the new entity speaks on the Kitchen speaker.

``--netns`` (root) runs HA and the browser in a fresh network namespace with only loopback:
the frontend asks HA for integration icons, which HA would fetch from the brands CDN.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path
import shutil
import subprocess
import sys
import time

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))

from demo import (
    CONFIG_DIR,
    NETNS_ENV,
    REPO,
    TTS_ENTITY,
    Check,
    DemoError,
    Stack,
    add_common_arguments,
    check_record,
    describe_fetch,
    enter_netns,
    log,
    log_errors,
    prepare_ha_python,
    running_stack,
)

CHROMIUM = Path("/usr/bin/chromium")
NODE_DIR = REPO / ".cache" / "ui-check"
PLAYWRIGHT = NODE_DIR / "node_modules" / "playwright-core"
UI_CONFIG_DIR = CONFIG_DIR.with_name("ui-check-config")
OUT = REPO / "out" / "ui"
BROWSER_TIMEOUT = 240.0


def ensure_chromium() -> None:
    """Debian's chromium, installed with apt-get when missing (root only)."""
    if CHROMIUM.exists():
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise DemoError(f"{CHROMIUM} is missing: install Debian's chromium package (as root)")
    log("Installing chromium (apt-get) ...")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], check=True, env=env)


def ensure_playwright() -> None:
    """playwright-core from npm in .cache/ui-check (no browser download: Debian's is used)."""
    if (PLAYWRIGHT / "package.json").exists():
        return
    if shutil.which("npm") is None:
        raise DemoError("npm is missing: install Node.js (Debian: apt-get install nodejs npm)")
    log("Installing playwright-core into .cache/ui-check (npm) ...")
    NODE_DIR.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["npm", "install", "--no-audit", "--no-fund", "--prefix", str(NODE_DIR), "playwright-core"],
        check=True,
        env={**os.environ, "PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD": "1"},
    )


def clear_screenshots(out: Path) -> None:
    """An empty screenshot folder (earlier runs' files removed)."""
    out.mkdir(parents=True, exist_ok=True)
    for old in (*out.glob("*.png"), *out.glob("*.html")):
        old.unlink()


async def drive_browser(stack: Stack, out: Path) -> None:
    """Run the browser script; its lines are printed as they come."""
    await asyncio.to_thread(clear_screenshots, out)
    process = await asyncio.create_subprocess_exec(
        "node",
        str(REPO / "script" / "ui_check.js"),
        env={
            **os.environ,
            "UI_URL": stack.ha.url,
            "UI_USER": stack.ha.username,
            "UI_PASSWORD": stack.ha.password,
            "UI_OUT": str(out),
            "UI_CHROMIUM": str(CHROMIUM),
            "UI_PLAYWRIGHT": str(PLAYWRIGHT),
        },
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert process.stdout is not None
    try:
        async with asyncio.timeout(BROWSER_TIMEOUT):
            async for line in process.stdout:
                log(f"   browser: {line.decode(errors='replace').rstrip()}")
            code = await process.wait()
    except TimeoutError:
        process.kill()
        await process.wait()
        raise DemoError(f"the browser did not finish within {BROWSER_TIMEOUT:.0f} s") from None
    if code != 0:
        raise DemoError(f"the browser script failed (exit code {code}); see {out}")


async def verify(stack: Stack) -> Check:
    """The entry the UI made is loaded, and its TTS entity speaks on a speaker."""
    check = Check("Alicia TTS added through the UI speaks")
    entries = await stack.api.rest("GET", "/api/config/config_entries/entry?domain=alicia_tts")
    states = [f"{e['title']}: {e['state']}" for e in entries]
    log(f"Alicia TTS entries: {', '.join(states) or 'none'}")
    (issues,) = await stack.api.ws({"type": "repairs/list_issues"})
    shown = [f"{i['domain']}.{i['issue_id']}" for i in issues["issues"] if not i.get("ignored")]
    log(f"Repair issues: {', '.join(shown) or 'none'}")
    if not any(e["state"] == "loaded" for e in entries):
        check.problems.append(f"no loaded Alicia TTS entry: {states}")
        return check
    await stack.api.wait_available(TTS_ENTITY, timeout=60)
    kitchen = stack.household["Kitchen"]
    count = len(kitchen.played)
    answer = await stack.api.rest(
        "POST",
        "/api/services/alicia_tts/say?return_response",
        {
            "entity_id": stack.players["Kitchen"],
            "message": "Set up in the browser.",
            "wait": True,
        },
    )
    log(f"alicia_tts.say on the Kitchen: {answer.get('service_response')}")
    new = kitchen.played[count:]
    for record in new:
        log(f"   Kitchen fetched {describe_fetch(record)}")
        check_record(record, check, kitchen.name)
    if not new:
        check.problems.append("the Kitchen fetched nothing")
    return check


async def run(args: argparse.Namespace) -> int:
    """Stack up, browser, checks."""
    started = time.monotonic()
    async with (
        aiohttp.ClientSession() as session,
        running_stack(args, session, UI_CONFIG_DIR, alicia=False) as stack,
    ):
        log(f"Browser: {CHROMIUM} with playwright-core; screenshots into {args.out}")
        check = Check("Alicia TTS added through the UI speaks")
        try:
            await drive_browser(stack, args.out)
        except DemoError as err:
            if not args.keep:
                raise
            check.problems.append(str(err))
        else:
            check = await verify(stack)
        if errors := log_errors(UI_CONFIG_DIR):
            check.problems.extend(f"Home Assistant logged: {line}" for line in errors)
        shots = sorted(p.name for p in args.out.glob("*.png"))
        log(f"Screenshots ({len(shots)}): {', '.join(shots)}")
        if args.keep:
            log(
                f"Home Assistant stays up at {stack.ha.url} (user demo, password "
                f"{stack.ha.password!r}) until Ctrl-C"
            )
            await asyncio.Event().wait()
    log(
        f"UI check {'OK' if check.ok else 'FAILED'} in {time.monotonic() - started:.1f} s"
        + "".join(f"\n  {problem}" for problem in check.problems)
    )
    return 0 if check.ok else 1


def main(argv: list[str] | None = None) -> int:
    """``script/ui_check [--netns] [--ha-version X] [--keep]``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    add_common_arguments(parser)
    parser.add_argument("--out", type=Path, default=OUT, help="screenshot folder (out/ui)")
    parser.add_argument("--keep", action="store_true", help="keep HA running until Ctrl-C")
    args = parser.parse_args(argv)
    try:
        if os.environ.get(NETNS_ENV) != "1":  # the network is needed for these, not inside
            ensure_chromium()
            ensure_playwright()
            prepare_ha_python(args.ha_version)
        if args.netns:
            enter_netns(Path(__file__).resolve(), argv)
        return asyncio.run(run(args))
    except DemoError as err:
        log(f"FAILED: {err}")
    except KeyboardInterrupt:
        return 0
    return 1


if __name__ == "__main__":
    sys.exit(main())
