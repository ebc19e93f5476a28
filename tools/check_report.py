#!/usr/bin/env python3
"""Opens a `psnap report` HTML file in headless Chromium (the distribution's, driven by Playwright) with the network
cut off, and checks it the way a reader would see it: no console error or failed request, every <img> decoded
(naturalWidth > 0), every inline <svg> laid out with a size; saves a full-page screenshot.

usage: check_report.py REPORT.html SCREENSHOT.png [--chromium /usr/bin/chromium]
Exits 1 naming what failed; 2 when Playwright or Chromium is missing.
"""
import os
import shutil
import sys


def main(argv):
    page_path, shot = os.path.abspath(argv[0]), argv[1]
    exe = argv[argv.index("--chromium") + 1] if "--chromium" in argv else (shutil.which("chromium") or shutil.which("chromium-browser"))
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        print("playwright is not installed"); return 2
    if not exe:
        print("chromium is not installed"); return 2
    errors, requests = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, headless=True, args=["--no-sandbox"])
        context = browser.new_context(offline=True)
        page = context.new_page()
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("requestfailed", lambda r: errors.append(f"request failed: {r.url[:80]}"))
        page.on("request", lambda r: requests.append(r.url) if not r.url.startswith(("file:", "data:")) else None)
        page.goto("file://" + page_path, wait_until="load")
        images = page.evaluate("""() => Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth, i.naturalHeight])""")
        svgs = page.evaluate("""() => Array.from(document.querySelectorAll('svg')).map(s => { const r = s.getBoundingClientRect(); return [r.width, r.height]; })""")
        svg_images = page.evaluate("""async () => {
            const out = [];
            for (const e of document.querySelectorAll('svg image')) {
                const im = new Image(); im.src = e.getAttribute('href');
                try { await im.decode(); out.push(im.naturalWidth); } catch (err) { out.push(0); }
            }
            return out; }""")
        page.screenshot(path=shot, full_page=True)
        browser.close()
    bad = [i for i in images if not i[1] or i[2] <= 0]
    if errors:
        print("console errors:", errors[:5]); return 1
    if requests:
        print("network requests (the page must be self-contained):", requests[:5]); return 1
    if not images or bad:
        print(f"{len(bad)} of {len(images)} images did not decode: {bad[:3]}"); return 1
    if any(w <= 0 or h <= 0 for w, h in svgs) or any(w <= 0 for w in svg_images):
        print("an inline SVG or one of its images has no size"); return 1
    print(f"{len(images)} images decoded, {len(svgs)} SVG charts ({len(svg_images)} embedded images) laid out, no console error; screenshot {shot}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
