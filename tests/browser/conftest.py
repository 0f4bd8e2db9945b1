"""The browser tests: Playwright driving the system's Chromium (never a downloaded browser)
against one `nexus up` shared by every test of the session.

`nexus up` runs as the operator runs it, as a child process, on free ports, with its database on
the test cluster (a database and role prefix of its own, dropped at the end). Without a Chromium
at CHROMIUM the tests are skipped and say so; in CI (`CI` set) a missing Chromium is a failure,
because `.ci/run` installs it.

NEXUS_BROWSER_SCREENSHOTS=<dir> keeps a screenshot of each screen the tests reach.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

from launch.registry import OWNING
from nexus.kit import postgres
from nexus.kit.auth import bearer_metadata
from nexus.kit.config import Settings
from nexus.kit.tokens import TokenSigner, ensure_signing_key
from nexus.ontology.v1 import ontology_pb2 as onto
from nexus.ontology.v1 import ontology_pb2_grpc as onto_grpc
from tests.conftest import free_port
from tests.support import NEXUS_COMMAND

CHROMIUM = Path(os.environ.get("NEXUS_CHROMIUM", "/usr/bin/chromium"))
HAVE_CHROMIUM = CHROMIUM.exists()
# Headless Chromium on a machine with no network, no GPU and no sandbox support.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "correct horse battery"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if HAVE_CHROMIUM:
        return
    if os.environ.get("CI"):
        return  # the fixture fails: CI must run these
    skip = pytest.mark.skip(reason=f"no Chromium at {CHROMIUM}: browser tests skipped (apt-get install chromium)")
    for item in items:
        if "tests/browser" in str(item.fspath):
            item.add_marker(skip)


@dataclass
class NexusUp:
    base_url: str
    process: subprocess.Popen[str]
    data_dir: Path
    ports: dict[str, int]
    output: list[str] = field(default_factory=list)

    async def add_command(self, trigger: str, steps: list[onto.Step], description: str) -> None:
        """A skill of the catalog's web researcher (the worker runs it) and a command for it,
        created as an operator would, with a service token minted from the data dir's keys."""
        signer = TokenSigner(ensure_signing_key(self.data_dir / "keys" / "signing"), issuer="nexus", audience="nexus")
        admin = bearer_metadata(
            signer.mint("service:browser-tests", kind="service", scopes=["ontology.admin"], ttl_s=300)
        )
        async with grpc.aio.insecure_channel(f"127.0.0.1:{self.ports['ONTOLOGY']}") as channel:
            stub = onto_grpc.OntologyServiceStub(channel)
            skill_id = "skill_" + secrets.token_hex(4)
            skill = onto.Skill(
                agent_id="web_researcher_v1", name=description, definition=onto.SkillDefinition(steps=steps)
            )
            await stub.CreateSkill(onto.CreateSkillRequest(skill_id=skill_id, skill=skill), metadata=admin)
            command = onto.Command(
                trigger=trigger, agent_id="web_researcher_v1", target_skill_id=skill_id, description=description
            )
            await stub.CreateCommand(onto.CreateCommandRequest(command=command), metadata=admin)


def _drain(process: subprocess.Popen[str], lines: list[str], ready: threading.Event) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        lines.append(line)
        if "Ctrl-C stops everything" in line:
            ready.set()
    ready.set()


@pytest.fixture(scope="session")
def nexus_up(pg_admin_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NexusUp]:
    suffix = secrets.token_hex(4)
    data_dir = tmp_path_factory.mktemp("nexus-up")
    http_port = free_port()
    ports = {name: free_port() for name in ("GATEWAY", "USER", "ONTOLOGY", "RUNTIME")}
    settings = Settings(
        data_dir=data_dir,
        database_url=pg_admin_url,
        database_name=f"nexus_browser_{suffix}",
        db_role_prefix=f"nb{suffix}_",
    )
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("NEXUS_")},
        "NEXUS_DATA_DIR": str(data_dir),
        "NEXUS_DATABASE_URL": pg_admin_url,
        "NEXUS_DATABASE_NAME": settings.database_name,
        "NEXUS_DB_ROLE_PREFIX": settings.db_role_prefix,
        "NEXUS_DB_POOL_SIZE": "4",
        "NEXUS_SHUTDOWN_GRACE": "1",
        "NEXUS_GATEWAY_HTTP_PORT": str(http_port),
        **{f"NEXUS_{name}_PORT": str(port) for name, port in ports.items()},
    }
    process = subprocess.Popen(
        [*NEXUS_COMMAND, "up"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    lines: list[str] = []
    ready = threading.Event()
    threading.Thread(target=_drain, args=(process, lines, ready), daemon=True).start()
    try:
        ready.wait(timeout=180)
        printed = "".join(lines)
        assert "Ctrl-C stops everything" in printed, f"nexus up did not come up:\n{printed[-4000:]}"
        base_url = f"http://127.0.0.1:{http_port}"
        # `nexus up` prints where the browser goes.
        assert f"{base_url}/" in printed, printed
        yield NexusUp(base_url, process, data_dir, ports, lines)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        postgres.drop(settings, OWNING)


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    if not HAVE_CHROMIUM:
        pytest.fail(f"CI needs Chromium at {CHROMIUM} (.ci/run installs it)")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS, headless=True)
        yield launched
        await launched.close()


@pytest.fixture
async def context(browser: Browser, nexus_up: NexusUp) -> AsyncIterator[BrowserContext]:
    """A fresh browser profile per test (its own sessionStorage: its own sign-in)."""
    made = await browser.new_context(base_url=nexus_up.base_url, viewport={"width": 1360, "height": 860})
    made.set_default_timeout(20_000)
    yield made
    await made.close()


@pytest.fixture
async def page(context: BrowserContext) -> Page:
    opened = await context.new_page()
    problems: list[str] = []
    opened.on("pageerror", lambda error: problems.append(str(error)))
    # Console errors too (a CSP violation is one); pictures from elsewhere cannot load offline.
    opened.on(
        "console",
        lambda message: (
            problems.append(message.text)
            if message.type == "error" and "Failed to load resource" not in message.text
            else None
        ),
    )
    opened.problems = problems  # type: ignore[attr-defined]
    return opened


async def snap(page: Page, name: str) -> None:
    folder = os.environ.get("NEXUS_BROWSER_SCREENSHOTS")
    if folder:
        # Playwright makes the folder.
        await page.screenshot(path=os.path.join(folder, f"{name}.png"), animations="disabled")


def unique_email() -> str:
    return f"browser_{secrets.token_hex(4)}_{int(time.time())}@example.com"


async def sign_up(page: Page, *, nickname: str = "Ada") -> str:
    email = unique_email()
    await page.goto("/")
    await page.get_by_test_id("auth-switch").click()
    await page.get_by_test_id("auth-email").fill(email)
    await page.get_by_test_id("auth-password").fill(PASSWORD)
    await page.get_by_test_id("auth-nickname").fill(nickname)
    await page.get_by_test_id("auth-submit").click()
    await page.get_by_test_id("sidebar").wait_for()
    return email
