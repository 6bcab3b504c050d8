"""The Zendesk app (Zendesk Apps framework v2) for admins: one package instead of manual setup.

- `package.py`: builds the app package (`yorisoi zendesk-app --out yorisoi-zendesk.zip`);
- `formats.py`: checks a package against the documented manifest/requirements formats;
- `png.py`: the logos, drawn with the standard library;
- `signed.py`: the ZAF JWT of signed URLs (RS256, the app's public key) and the short-lived
  sidebar session it is exchanged for;
- `web.py`: `POST /zendesk/app/sidebar`, the `ticket_sidebar` page, and its scripts.
"""
