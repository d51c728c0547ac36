"""Take docs/dashboard.png, the README's screenshot: one demo patient's dashboard in headless Chromium (Playwright
driving Debian's chromium, as the browser tests do). Usage: .venv/bin/python scripts/dashboard_screenshot.py
[PATIENT_ID] [OUT.png]"""
from __future__ import annotations

import sys
import threading
from pathlib import Path

from playwright.sync_api import sync_playwright
from werkzeug.serving import make_server

from fhir_pain.app import create_app

ROOT = Path(__file__).resolve().parent.parent
FLAGS = "--headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking"


def main() -> int:
    patient = sys.argv[1] if len(sys.argv) > 1 else "demo-13-mara-non-responder"
    out = Path(sys.argv[2]) if len(sys.argv) > 2 else ROOT / "docs" / "dashboard.png"
    app = create_app({"AUTH": "off", "DASHBOARD_DEMO": True, "DATABASE_URL": "sqlite://"})
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=[
                *FLAGS.split(), "--disable-component-update", "--disable-sync"])
            page = browser.new_page(viewport={"width": 1100, "height": 1500})
            page.goto(f"http://127.0.0.1:{server.server_port}/dashboard/demo/{patient}")
            page.screenshot(path=str(out), full_page=False)
            browser.close()
    finally:
        server.shutdown()
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
