"""pywa 4.5.0 against the sandbox: a real client parses the sandbox's webhooks with its own
parser and replies with its own default addressing.

Run by `.ci/pywa` against a fresh `mynah sandbox --ephemeral --clock manual` (its URL in
MYNAH_SANDBOX). pywa's webhook endpoint is a plain `http.server` that hands every POST to pywa's
`webhook_update_validator` (the X-Hub-Signature-256 check) and `webhook_update_handler`, as pywa
documents for custom servers. For each of two users — one without a username (phone and BSUID in
every webhook) and one with a username whose phone is withheld — the sandbox simulates an
inbound message; pywa must build a `Message` from it and reply with `reply_text`, which pywa 4.5
addresses by BSUID (`recipient`); the sandbox must accept it and pywa must parse the `sent`,
`delivered` and `read` statuses of the reply. Everything is bounded in time; any miss is an error
with what was (not) seen.
"""

import json
import os
import re
import sys
import threading
import time
import traceback
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pywa
from pywa import WhatsApp, types

SANDBOX = os.environ.get("MYNAH_SANDBOX", "http://127.0.0.1:8360").rstrip("/")
PNID = "106540352242922"
WABA = "102290129340398"
TOKEN = "mynah-dev-token"
SECRET = "mynah-dev-secret"
BSUID = re.compile(r"^[A-Z]{2}\.\d+$")
DEADLINE = float(os.environ.get("PYWA_STEP_SECONDS", "20"))

if pywa.__version__ != "4.5.0":
    sys.exit(f"pywa 4.5.0 expected, found {pywa.__version__}")


def call(method, path, body=None):
    """A request to the sandbox's control API or platform API; the JSON answer."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(SANDBOX + path, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if not path.startswith("/_mynah"):
        req.add_header("Authorization", f"Bearer {TOKEN}")
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read() or b"null")


# What pywa handed to the handlers, and anything that went wrong inside them.
lock = threading.Lock()
messages = []  # types.Message
replies = {}  # inbound wamid -> SentMessage
statuses = []  # types.MessageStatus
raw_fields = []  # every update's field, as pywa saw it
errors = []

wa = WhatsApp(
    phone_id=PNID,
    token=TOKEN,
    verify_token="mynah-pywa",
    app_secret=SECRET,
    waba_id=WABA,
)
# pywa talks to graph.facebook.com; point its session at the sandbox's Cloud API face (the
# version pywa 4.5.0 uses by default: v26.0).
wa._api._session.base_url = f"{SANDBOX}/v{wa._api._session.base_url.path.strip('/').lstrip('v')}"


@wa.on_raw_update()
def on_raw(_: WhatsApp, update: types.RawUpdate):
    with lock:
        raw_fields.append(update["entry"][0]["changes"][0]["field"])


@wa.on_message()
def on_message(client: WhatsApp, msg: types.Message):
    try:
        with lock:
            messages.append(msg)
        sent = msg.reply_text(f"Got it, {msg.from_user.name}.")
        with lock:
            replies[msg.id] = sent
    except Exception:
        with lock:
            errors.append(traceback.format_exc())


@wa.on_message_status()
def on_status(_: WhatsApp, status: types.MessageStatus):
    with lock:
        statuses.append(status)


class Hook(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        refused = wa.webhook_update_validator(body, self.headers.get("X-Hub-Signature-256"))
        if refused:
            with lock:
                errors.append(f"pywa refused a webhook: {refused}")
            text, code = refused
        else:
            text, code = wa.webhook_update_handler(body)
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write(str(text).encode())

    def log_message(self, *args):
        pass


def wait_for(what, check):
    """Waits until `check()` is truthy; fails with `what` and the state otherwise."""
    end = time.monotonic() + DEADLINE
    while time.monotonic() < end:
        with lock:
            if errors:
                fail("a pywa handler failed:\n" + "\n".join(errors))
            got = check()
        if got:
            return got
        time.sleep(0.05)
    fail(f"timed out waiting for {what}")


def fail(why):
    with lock:
        state = {
            "fields": raw_fields,
            "messages": [(m.id, m.from_user.bsuid, m.from_user.wa_id) for m in messages],
            "replies": {k: v.id for k, v in replies.items()},
            "statuses": [(s.id, str(s.status)) for s in statuses],
        }
    print(f"pywa test FAILED: {why}\nstate: {json.dumps(state, default=str)}", file=sys.stderr)
    os._exit(1)


def expect(cond, why):
    if not cond:
        fail(why)


def round_trip(phone, name, username):
    """One inbound message from `phone`, pywa's reply, the reply's statuses."""
    if username:
        call("PUT", f"/_mynah/users/{phone}/username", {"username": username})
    sim = call(
        "POST",
        "/_mynah/inbound",
        {"from": phone, "name": name, "type": "text", "text": {"body": "Do you ship to Hamburg?"}},
    )
    wamid = sim["id"]
    msg = wait_for(
        f"pywa's Message for {wamid}",
        lambda: next((m for m in messages if m.id == wamid), None),
    )
    user = msg.from_user
    expect(BSUID.match(user.bsuid or ""), f"bsuid {user.bsuid!r} is a BSUID pywa recognises")
    expect(user.name == name, f"name {user.name!r}")
    expect(msg.text == "Do you ship to Hamburg?", f"text {msg.text!r}")
    if username:
        expect(user.wa_id is None, f"the phone is withheld, pywa has wa_id {user.wa_id!r}")
        expect(user.username == username, f"username {user.username!r}")
    else:
        expect(user.wa_id == phone, f"wa_id {user.wa_id!r}")
        expect(user.username is None, f"username {user.username!r}")
    sent = wait_for(f"pywa's reply to {wamid}", lambda: replies.get(wamid))
    expect(sent.id.startswith("wamid."), f"reply id {sent.id!r}")
    # pywa addressed its reply by BSUID (`recipient`), and the sandbox took it for the person.
    stored = call("GET", f"/_mynah/messages/{sent.id}")
    expect(stored.get("recipient") == user.bsuid, f"the reply was sent to the BSUID: {stored}")
    expect(stored["wa_id"] == phone, f"the reply reached {phone}: {stored['wa_id']}")
    expect(f'"recipient":"{user.bsuid}"' in json.dumps(stored["body"], separators=(",", ":")),
           f"the body pywa sent: {stored['body']}")
    # The lifecycle on the manual clock; pywa parses every status of the reply.
    call("POST", "/_mynah/clock/advance", {"seconds": 10})
    want = {"sent", "delivered", "read"}
    got = wait_for(
        f"statuses {sorted(want)} of {sent.id}",
        lambda: (lambda seen: seen if want <= set(seen) else None)(
            {str(s.status.value): s for s in statuses if s.id == sent.id}
        ),
    )
    for kind, st in got.items():
        expect(st.from_user.bsuid == user.bsuid, f"{kind}: bsuid {st.from_user.bsuid!r}")
        if username:
            expect(st.from_user.wa_id is None, f"{kind}: the phone is withheld: {st.from_user.wa_id!r}")
        else:
            expect(st.from_user.wa_id == phone, f"{kind}: wa_id {st.from_user.wa_id!r}")
        expect(st.error is None, f"{kind}: error {st.error}")
    expect(got["sent"].pricing is not None and got["sent"].pricing.category is not None,
           f"sent carries pricing: {got['sent'].pricing}")
    return user.bsuid


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/webhook"
    # The webhook URL through the platform's own endpoint (Cloud API webhook override).
    call("POST", f"/v26.0/{PNID}", {"webhook_configuration": {"override_callback_uri": url}})
    a = round_trip("4915112345678", "Anna K", None)
    b = round_trip("4915198765432", "Bob B", "bob.builder")
    expect(a != b, "two users, two BSUIDs")
    with lock:
        unknown = [f for f in raw_fields if f != "messages"]
    expect(not unknown, f"only messages webhooks were expected: {unknown}")
    server.shutdown()
    print(f"pywa {pywa.__version__}: inbound messages, BSUID replies and their statuses parsed "
          f"for a user with a phone ({a}) and a username user with the phone withheld ({b})")


if __name__ == "__main__":
    main()
