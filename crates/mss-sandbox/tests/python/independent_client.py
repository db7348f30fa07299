#!/usr/bin/env python3
"""An independent MSSanté client against the sandbox, with nothing but Python's standard
library (urllib, json, ssl, smtplib, imaplib): discover Pro Santé Connect, get tokens by
CIBA, log in to IMAP and SMTP with XOAUTH2, send to another sandbox mailbox and read it
back, log in with EXTERNAL and the application certificate, and be refused with an expired
token, a token for another mailbox, a certificate from another CA, and LOGIN.

Usage: independent_client.py <sandbox.json>   (exit status 0 when every check passed)
The sandbox must issue short-lived access tokens (a few seconds) for the expiry check.
"""

import base64
import imaplib
import json
import smtplib
import socket
import ssl
import sys
import time
import urllib.parse
import urllib.request
import uuid

TIMEOUT = 30
CHECKS = []


def check(name, condition, detail=""):
    CHECKS.append(name)
    if not condition:
        raise AssertionError(f"{name}: {detail}")
    print(f"ok   {name}")


def host_port(value):
    host, port = value.rsplit(":", 1)
    return host, int(port)


class Psc:
    def __init__(self, info):
        self.client_id = info["psc"]["client_id"]
        self.secret = info["psc"]["client_secret"]
        url = info["psc"]["issuer"] + "/.well-known/openid-configuration"
        with urllib.request.urlopen(url, timeout=TIMEOUT) as r:
            self.disco = json.load(r)
        check("PSC discovery names the CIBA and token endpoints",
              "backchannel_authentication_endpoint" in self.disco
              and "token_endpoint" in self.disco, self.disco)

    def post(self, url, form):
        auth = base64.b64encode(f"{self.client_id}:{self.secret}".encode()).decode()
        request = urllib.request.Request(
            url, data=urllib.parse.urlencode(form).encode(),
            headers={"Authorization": "Basic " + auth,
                     "Content-Type": "application/x-www-form-urlencoded"})
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT) as r:
                return json.load(r)
        except urllib.error.HTTPError as e:
            return json.load(e)

    def token(self, login_hint):
        started = self.post(self.disco["backchannel_authentication_endpoint"], {
            "scope": "openid scope_all", "login_hint": login_hint,
            "binding_message": "PYTHON"})
        interval = started.get("interval", 5)
        for _ in range(60):
            answer = self.post(self.disco["token_endpoint"], {
                "grant_type": "urn:openid:params:grant-type:ciba",
                "auth_req_id": started["auth_req_id"]})
            if "access_token" in answer:
                return answer["access_token"]
            if answer.get("error") == "slow_down":
                interval += 1
            elif answer.get("error") != "authorization_pending":
                raise AssertionError(f"CIBA refused: {answer}")
            time.sleep(interval)
        raise AssertionError("CIBA never answered")


def claims(jwt):
    """The claims of a JWT, unverified: only to know when it expires."""
    payload = jwt.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def xoauth2(user, token):
    return f"user={user}\x01auth=Bearer {token}\x01\x01"


def smtp_session(info, context):
    host, port = host_port(info["smtp"])
    smtp = smtplib.SMTP(host, port, timeout=TIMEOUT)
    smtp.ehlo("python.test")
    check("SMTP: no AUTH before STARTTLS", not smtp.has_extn("auth"), smtp.esmtp_features)
    smtp.starttls(context=context)
    smtp.ehlo("python.test")
    return smtp


def smtp_xoauth2(smtp, user, token):
    """AUTH XOAUTH2; an error challenge (334) is answered with an empty line."""
    return smtp.auth("XOAUTH2",
                     lambda challenge=None: xoauth2(user, token) if challenge is None else "")


def imap_session(info, context):
    host, port = host_port(info["imap"])
    imap = imaplib.IMAP4(host, port, timeout=TIMEOUT)
    imap.starttls(ssl_context=context)
    return imap


def imap_xoauth2(imap, user, token):
    # imaplib answers the server's error challenge with the same bytes: the server fails.
    return imap.authenticate("XOAUTH2", lambda _: xoauth2(user, token).encode())


def main():
    info = json.load(open(sys.argv[1]))
    bals = {b["address"]: b for b in info["bals"]}
    jeanne = next(a for a, b in bals.items() if b.get("login_hint") == "899700000001")
    karim = next(a for a, b in bals.items() if b.get("login_hint") == "899700000002")
    app = next(b for b in info["bals"] if b["auth"] == "certificate")

    trusted = ssl.create_default_context(cafile=info["ca_pem"])
    with_cert = ssl.create_default_context(cafile=info["ca_pem"])
    with_cert.load_cert_chain(app["cert_pem"], app["key_pem"])
    foreign = ssl.create_default_context(cafile=info["ca_pem"])
    foreign.load_cert_chain(info["pki"]["untrusted_server_chain_pem"],
                            info["pki"]["untrusted_server_key_pem"])

    psc = Psc(info)
    jeanne_token = psc.token("899700000001")
    check("CIBA gives Jeanne MARTIN an access token", jeanne_token.count(".") == 2)

    # SMTP with XOAUTH2, to Karim.
    marker = uuid.uuid4().hex
    smtp = smtp_session(info, trusted)
    code, _ = smtp_xoauth2(smtp, jeanne, jeanne_token)
    check("SMTP: XOAUTH2 with the PSC token", code == 235, code)
    message = (f"From: {jeanne}\r\nTo: {karim}\r\nSubject: python {marker}\r\n"
               f"X-MSS-NIL: PYTHON\r\n\r\nBonjour depuis Python.\r\n")
    refused = smtp.sendmail(jeanne, [karim], message)
    check("SMTP: the message is accepted", refused == {}, refused)
    smtp.quit()

    # SMTP refusals: a token for another mailbox, LOGIN, MAIL FROM another mailbox.
    smtp = smtp_session(info, trusted)
    try:
        smtp_xoauth2(smtp, karim, jeanne_token)
        check("SMTP: a token for another mailbox is refused", False, "235")
    except smtplib.SMTPAuthenticationError as e:
        check("SMTP: a token for another mailbox is refused", e.smtp_code == 535, e)
    code, _ = smtp.docmd("AUTH", "LOGIN")
    check("SMTP: AUTH LOGIN is refused", code == 504, code)
    smtp.close()

    # SMTP with EXTERNAL and the application certificate.
    smtp = smtp_session(info, with_cert)
    code, _ = smtp.docmd("AUTH", "EXTERNAL =")
    check("SMTP: EXTERNAL with the APP certificate", code == 235, code)
    code, _ = smtp.docmd("MAIL", f"FROM:<{jeanne}>")
    check("SMTP: MAIL FROM another mailbox than the one logged in is refused", code == 553, code)
    smtp.close()

    # A certificate from another CA.
    try:
        smtp = smtp_session(info, foreign)
        code, _ = smtp.docmd("AUTH", "EXTERNAL =")
        smtp.close()
        check("SMTP: a certificate from another CA is refused", code != 235, code)
    except (ssl.SSLError, smtplib.SMTPException, ConnectionError, OSError) as e:
        check("SMTP: a certificate from another CA is refused", True, e)

    # IMAP: Karim reads the message.
    karim_token = psc.token("899700000002")
    imap = imap_session(info, trusted)
    typ, _ = imap_xoauth2(imap, karim, karim_token)
    check("IMAP: XOAUTH2 with the PSC token", typ == "OK", typ)
    typ, _ = imap.select("INBOX")
    check("IMAP: SELECT INBOX", typ == "OK", typ)
    typ, data = imap.uid("SEARCH", None, "SUBJECT", marker)
    uids = data[0].split()
    check("IMAP: the message sent over SMTP is there", typ == "OK" and len(uids) == 1, data)
    typ, data = imap.uid("FETCH", uids[0], "(BODY.PEEK[])")
    body = data[0][1]
    check("IMAP: it reads back as sent",
          b"Bonjour depuis Python." in body and b"Received: " in body, body[:200])
    imap.logout()

    # IMAP refusals: LOGIN, a token for another mailbox.
    imap = imap_session(info, trusted)
    try:
        imap.login(karim, "password")
        check("IMAP: LOGIN is refused", False, "OK")
    except imaplib.IMAP4.error as e:
        check("IMAP: LOGIN is refused", True, e)
    try:
        imap_xoauth2(imap, karim, jeanne_token)
        check("IMAP: a token for another mailbox is refused", False, "OK")
    except imaplib.IMAP4.error as e:
        check("IMAP: a token for another mailbox is refused", True, e)
    try:
        imap.logout()
    except (imaplib.IMAP4.error, OSError):
        pass

    # IMAP with EXTERNAL and the application certificate.
    imap = imap_session(info, with_cert)
    typ, _ = imap.authenticate("EXTERNAL", lambda _: b"")
    check("IMAP: EXTERNAL with the APP certificate", typ == "OK", typ)
    imap.logout()

    try:
        imap = imap_session(info, foreign)
        imap.authenticate("EXTERNAL", lambda _: b"")
        check("IMAP: a certificate from another CA is refused", False, "OK")
    except (ssl.SSLError, imaplib.IMAP4.error, ConnectionError, OSError) as e:
        check("IMAP: a certificate from another CA is refused", True, e)

    # The access token once expired (the runner makes them short-lived).
    wait = max(0, claims(jeanne_token)["exp"] - time.time()) + 1.5
    check("the token is short-lived for this run", wait < 30, wait)
    time.sleep(wait)
    smtp = smtp_session(info, trusted)
    try:
        smtp_xoauth2(smtp, jeanne, jeanne_token)
        check("SMTP: an expired token is refused", False, "235")
    except smtplib.SMTPAuthenticationError as e:
        check("SMTP: an expired token is refused", e.smtp_code == 535, e)
    smtp.close()
    imap = imap_session(info, trusted)
    try:
        imap_xoauth2(imap, jeanne, jeanne_token)
        check("IMAP: an expired token is refused", False, "OK")
    except imaplib.IMAP4.error as e:
        check("IMAP: an expired token is refused", True, e)

    print(f"all {len(CHECKS)} checks passed")


if __name__ == "__main__":
    socket.setdefaulttimeout(TIMEOUT)
    try:
        main()
    except AssertionError as e:
        print(f"FAIL {e}", file=sys.stderr)
        sys.exit(1)
