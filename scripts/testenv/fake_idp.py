#!/usr/bin/env python3
"""Fake OAuth2 identity provider for the Loket test environment (python3 standard library only).

Origin: the project's OAuth mail lab (notes oauth-lab/fake_idp.py, verified against Dovecot 2.3.19.1+deb12u7
and Postfix 3.7 with 36 checks), written for Loket; same licence as Loket (Apache-2.0). Changes here:
users are any address at the test domains (`user_domains`), tests register their own clients
(`/_admin/client`) so that parallel tests never share a grant, and a client may set its own `access_ttl`. scripts/testenv/start.sh starts it.

Token endpoints, with the JSON shapes of the providers' documentation:
  Microsoft v2.0 (any {tenant})  POST /{tenant}/oauth2/v2.0/token  grant_type = client_credentials | refresh_token
                                      | urn:ietf:params:oauth:grant-type:device_code
                                 POST /{tenant}/oauth2/v2.0/devicecode  client_id, scope
  Google  POST /token        grant_type = refresh_token | ...:device_code | ...:jwt-bearer (service account;
                             the JWT signature is NOT checked)
          POST /device/code  client_id, scope          POST /revoke  token=... (revokes the whole grant)
For Dovecot and the tests:
  POST /introspect     RFC 7662; resource-server credentials client_id/client_secret in the form (Dovecot's
                       introspection_mode = post) or HTTP Basic.  {"active": false} or {"active": true, ...}
  POST /devicelogin (Microsoft verification_uri), POST /device (Google verification_url):
                       user_code=...&login=user@domain[&action=deny] = "the user approves the code"
  POST /_admin/client  JSON {client_id, provider, secret?, public?, tenants?, app_mailbox?, app_roles?}: register a client
  POST /_admin/grant   client_id, user, scope: tokens as after a browser consent (auth-code flow not imitated)
  POST /_admin/revoke  token=...  revoke its grant (Microsoft has no such endpoint)
  POST /_admin/expire  token=...  let an access token expire now
  POST /_admin/config  JSON body, e.g. {"introspect_fail": true} (introspection answers 503)
  GET  /_admin/stats   counters, e.g. introspection calls made by Dovecot
Microsoft Graph mail (the endpoints Loket's Graph inbox and sendMail transport use), checking each
bearer token against the tokens issued here (audience https://graph.microsoft.com, application
roles Mail.ReadWrite / Mail.Send):
  GET  /v1.0/users/{u}/mailFolders/{folder}/messages/delta[?$deltatoken=N|$skiptoken=..]
                       pages of 5 ids ("@odata.nextLink"), then "@odata.deltaLink"; with a delta token
                       only the changes since it (a message moved away: "@removed")
  GET  /v1.0/users/{u}/messages/{id}/$value   the message's MIME
  POST /v1.0/users/{u}/messages/{id}/move     {"destinationId"}: moved, with a new id (as Graph does)
  GET  /v1.0/users/{u}/mailFolders?$filter=displayName eq 'X'    POST /v1.0/users/{u}/mailFolders {"displayName"}
  POST /v1.0/users/{u}/sendMail   MIME as base64 text (Content-Type: text/plain): 202
  POST /_admin/graph/deliver  JSON {user, mime_b64}: a message arrives in the user's Inbox
  GET  /_admin/graph/mailbox?user=U&folder=F   the folder's message ids;  GET /_admin/graph/sent?user=U
  POST /_admin/graph/config   JSON, e.g. {"fail_sends": 2} (the next two sendMail calls answer 503)
Refresh tokens rotate strictly: each refresh returns a new one, the old one gets invalid_grant.
State lives in memory only.  Usage: fake_idp.py --config idp.json   (start.sh writes that file)
"""
import argparse, base64, json, secrets, sys, threading, time, urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
OIDC_SCOPES = {"openid", "profile", "email", "offline_access"}
MS_RESOURCE_ALIASES = {"https://outlook.office365.com": "https://outlook.office.com"}

LOCK = threading.Lock()
ACCESS = {}    # access token -> {user, client_id, aud, scope, exp, iat, grant, provider, tenant}
REFRESH = {}   # refresh token -> {grant, client_id, user, scope, aud, provider, tenant, used}
DEVICE = {}    # device_code -> {user_code, client_id, scope, exp, next_poll, state, user, provider, tenant}
REVOKED = set()  # revoked grant ids
STATS = {"introspect": 0, "introspect_active": 0, "token": 0}
CFG = {}
GRAPH = {"seq": 0, "boxes": {}, "sent": {}, "fail_sends": 0}  # boxes: user -> {folders, msgs}
GRAPH_RESOURCE = "https://graph.microsoft.com"

class OAuthError(Exception):
    """An OAuth error answer: HTTP status, error code, description (+ AADSTS code for Microsoft)."""
    def __init__(self, status, error, desc, aadsts=None):
        super().__init__(error)
        self.status, self.error, self.desc, self.aadsts = status, error, desc, aadsts

def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

def now():
    return int(time.time())

def ms_canonical(scope_uri):
    """https://outlook.office365.com/X -> https://outlook.office.com/X (Microsoft treats them alike)."""
    for alias, canon in MS_RESOURCE_ALIASES.items():
        if scope_uri.startswith(alias + "/"):
            return canon + scope_uri[len(alias):]
    return scope_uri

def new_access_token(provider, claims):
    """Microsoft: JWT-shaped (header.payload.signature), padded to ms_token_length chars like real
    Exchange tokens (1.5-2.5 KB).  Google: opaque 'ya29.' token.  Clients must not parse either."""
    if provider == "google":
        return "ya29." + secrets.token_urlsafe(120)
    head = b64url(json.dumps({"typ": "JWT", "alg": "RS256", "kid": "oauthlab"}).encode())
    sig = b64url(secrets.token_bytes(256))
    body = dict(claims, jti=secrets.token_hex(8))
    want = int(CFG.get("ms_token_length", 1800))
    pad = max(0, (want - len(head) - len(sig) - 2 - len(b64url(json.dumps(body).encode())) - 20) * 3 // 4)
    body["xms_pad"] = "x" * pad
    return f"{head}.{b64url(json.dumps(body).encode())}.{sig}"

def issue(provider, tenant, client_id, user, scope, aud, grant=None, with_refresh=True):
    """Create an access token (+ refresh token) for one grant; returns the provider's JSON answer."""
    grant = grant or secrets.token_hex(8)
    ttl = int(CFG["clients"].get(client_id, {}).get("access_ttl", CFG.get("access_ttl", 3599)))
    claims = {"aud": aud, "iss": f"https://sts.windows.net/{tenant}/", "iat": now(), "nbf": now(),
              "exp": now() + ttl, "tid": tenant, "appid": client_id, "upn": user, "scp": scope}
    at = new_access_token(provider, claims)
    with LOCK:
        ACCESS[at] = {"user": user, "client_id": client_id, "aud": aud, "scope": scope, "iat": now(),
                      "exp": now() + ttl, "grant": grant, "provider": provider, "tenant": tenant}
    answer = {"token_type": "Bearer", "scope": scope, "expires_in": ttl, "access_token": at}
    if provider == "microsoft":
        answer["ext_expires_in"] = ttl
    if with_refresh:
        rt = ("1//" + secrets.token_urlsafe(64)) if provider == "google" else ("1.AQ" + secrets.token_urlsafe(300))
        with LOCK:
            REFRESH[rt] = {"grant": grant, "client_id": client_id, "user": user, "scope": scope, "aud": aud,
                           "provider": provider, "tenant": tenant, "used": False}
        answer["refresh_token"] = rt
    return answer

def known_user(user):
    """A configured user, or any address at one of the `user_domains`."""
    return user in CFG["users"] or user.rpartition("@")[2] in CFG.get("user_domains", [])

def client_for(params, provider, need_secret):
    """Look up and authenticate the OAuth client (form fields client_id / client_secret)."""
    cid = params.get("client_id", "")
    c = CFG["clients"].get(cid)
    if c is None or c["provider"] != provider:
        raise OAuthError(400 if provider == "microsoft" else 401, "invalid_client" if provider == "google"
                         else "unauthorized_client", f"Application with identifier '{cid}' was not found.", 700016)
    if need_secret and not c.get("public") and params.get("client_secret") != c.get("secret"):
        raise OAuthError(401, "invalid_client", "Invalid client secret provided.", 7000215)
    return cid, c

# ---------------------------------------------------------------- grants ----------------------------
def grant_client_credentials(p, tenant):
    cid, c = client_for(p, "microsoft", True)
    if c.get("public"):
        raise OAuthError(401, "invalid_client", "The request body must contain 'client_secret'.", 7000218)
    scopes = p.get("scope", "").split()
    if len(scopes) != 1 or not scopes[0].endswith("/.default"):
        raise OAuthError(400, "invalid_scope", f"The provided value for scope {p.get('scope', '')} is not valid. "
                         "Client credential flows must have a scope value with /.default suffixed to the "
                         "resource identifier (application ID URI).", 1002012)
    resource = scopes[0][:-len("/.default")]
    roles = c.get("app_roles", {}).get(MS_RESOURCE_ALIASES.get(resource, resource), [])
    granted = " ".join(ms_canonical(f"{resource}/{r}") for r in roles)
    # Exchange grants an app access to a mailbox by mailbox permission; Dovecot can only compare one username
    # attribute, so each confidential client is bound to one mailbox here (app_mailbox).
    ans = issue("microsoft", tenant, cid, c.get("app_mailbox", ""), granted, resource, with_refresh=False)
    del ans["scope"]      # Microsoft's client_credentials answer has no scope field
    return ans

def grant_refresh(p, provider, tenant):
    cid, c = client_for(p, provider, True)
    rt = p.get("refresh_token", "")
    with LOCK:
        r = REFRESH.get(rt)
        bad = (r is None or r["used"] or r["grant"] in REVOKED or r["client_id"] != cid)
        if not bad:
            r["used"] = True           # strict rotation: this refresh token is now spent
    if bad:
        if provider == "google":
            raise OAuthError(400, "invalid_grant", "Token has been expired or revoked.")
        raise OAuthError(400, "invalid_grant", "The provided grant has expired due to it being revoked, "
                         "a fresh auth token is needed. The user might have changed or reset their password.", 50173)
    return issue(provider, r["tenant"], cid, r["user"], r["scope"], r["aud"], grant=r["grant"])

def device_start(p, provider, tenant):
    cid, c = client_for(p, provider, False)
    scopes = p.get("scope", "").split()
    if provider == "google" and not CFG.get("google_device_any_scope"):
        # Google's limited-input device flow only allows a short scope list; Gmail is not on it.
        allowed = set(CFG.get("google_device_allowed_scopes", ["openid", "email", "profile"]))
        if not set(scopes) <= allowed:
            raise OAuthError(400, "invalid_scope", "Some requested scopes were invalid. {invalid=[%s]}"
                             % ", ".join(sorted(set(scopes) - allowed)))
    code = secrets.token_urlsafe(48)
    user_code = secrets.choice("BCDFGHJKLMNPQRSTVWXZ") + "".join(secrets.choice("BCDFGHJKLMNPQRSTVWXZ0123456789")
                                                                 for _ in range(7))
    ttl = 900 if provider == "microsoft" else 1800
    interval = int(CFG.get("device_interval", 5))
    with LOCK:
        DEVICE[code] = {"user_code": user_code, "client_id": cid, "scope": " ".join(scopes), "exp": now() + ttl,
                        "interval": interval, "next_poll": 0, "state": "pending", "user": None,
                        "provider": provider, "tenant": tenant}
    base = CFG["base_url"]
    if provider == "google":
        return {"device_code": code, "user_code": user_code[:4] + "-" + user_code[4:],
                "verification_url": f"{base}/device", "expires_in": ttl, "interval": interval}
    return {"user_code": user_code, "device_code": code, "verification_uri": f"{base}/devicelogin",
            "expires_in": ttl, "interval": interval,
            "message": f"To sign in, use a web browser to open the page {base}/devicelogin and enter the "
                       f"code {user_code} to authenticate."}

def device_poll(p, provider, tenant):
    cid, c = client_for(p, provider, provider == "google")
    code = p.get("device_code") or p.get("code", "")
    g = provider == "google"
    with LOCK:
        d = DEVICE.get(code)
        if d is None or d["client_id"] != cid or d["state"] == "redeemed":
            raise OAuthError(400, "invalid_grant", "The device code is invalid or was already redeemed.", 70000)
        if now() > d["exp"]:
            raise OAuthError(400, "expired_token", "Bad Request" if g else "Verification code expired.", 70019)
        if d["state"] == "pending" and time.time() < d["next_poll"]:
            d["next_poll"] = time.time() + d["interval"]
            raise OAuthError(403 if g else 400, "slow_down", "Forbidden" if g else "Polling too fast.", 70016)
        d["next_poll"] = time.time() + d["interval"]
        if d["state"] == "pending":
            raise OAuthError(428 if g else 400, "authorization_pending", "Precondition Required" if g else
                             "OAuth 2.0 device flow error. Authorization is pending. Continue polling.", 70016)
        if d["state"] == "denied":
            raise OAuthError(403 if g else 400, "access_denied" if g else "authorization_declined",
                             "Forbidden" if g else "The end user denied the authorization request.", 70004)
        d["state"] = "redeemed"
        user, scopes = d["user"], d["scope"].split()
    return delegated(provider, tenant, cid, user, scopes)

def delegated(provider, tenant, cid, user, scopes):
    """Token answer for a user-delegated grant (device code or /_admin/grant)."""
    res = [ms_canonical(s) for s in scopes if s not in OIDC_SCOPES]
    aud = "https://mail.google.com/" if provider == "google" else (res[0].rsplit("/", 1)[0] if res else "")
    want_rt = provider == "google" or "offline_access" in scopes   # Microsoft: RT only with offline_access
    return issue(provider, tenant, cid, user, " ".join(res), aud, with_refresh=want_rt)

def grant_jwt_bearer(p):
    """Google service account with domain-wide delegation: assertion = JWT {iss, sub, scope, aud, exp}."""
    try:
        claims = json.loads(base64.urlsafe_b64decode(p["assertion"].split(".")[1] + "=="))
    except Exception:
        raise OAuthError(400, "invalid_grant", "Invalid JWT Signature.")
    sa = CFG.get("google_service_accounts", {}).get(claims.get("iss", ""))
    if sa is None:
        raise OAuthError(400, "invalid_grant", "Invalid JWT Signature.")
    if claims.get("exp", 0) < now():
        raise OAuthError(400, "invalid_grant", "Invalid JWT: Token must be a short-lived token (60 minutes) and in "
                         "a reasonable timeframe.")
    scopes = claims.get("scope", "").split()
    if not scopes or not set(scopes) <= set(sa.get("scopes", [])):
        raise OAuthError(401, "unauthorized_client", "Client is unauthorized to retrieve access tokens using this "
                         "method, or client not authorized for any of the scopes requested.")
    user = claims.get("sub", "")
    if not known_user(user):
        raise OAuthError(400, "invalid_grant", "Invalid email or User ID")
    ans = issue("google", "google", claims["iss"], user, " ".join(scopes), "https://mail.google.com/",
                with_refresh=False)
    del ans["scope"]
    return ans

def revoke(token):
    """Revoke the grant behind an access or refresh token.  Returns False if unknown."""
    with LOCK:
        rec = ACCESS.get(token) or REFRESH.get(token)
        if rec is None:
            return False
        REVOKED.add(rec["grant"])
        return True

def introspect(p, headers):
    """RFC 7662.  The resource server (Dovecot) must authenticate; Dovecot's post mode sends
    token, client_id and client_secret in the form body."""
    cid, secret = p.get("client_id", ""), p.get("client_secret", "")
    auth = headers.get("Authorization", "")
    if auth.startswith("Basic "):
        cid, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
    if CFG.get("introspection_clients", {}).get(cid) != secret or not cid:
        raise OAuthError(401, "invalid_client", "resource server authentication failed")
    with LOCK:
        STATS["introspect"] += 1
        if CFG.get("introspect_fail"):
            raise OAuthError(503, "temporarily_unavailable", "introspection switched off by /_admin/config")
        rec = ACCESS.get(p.get("token", ""))
        if rec is None or rec["grant"] in REVOKED or rec["exp"] <= now():
            return {"active": False}
        STATS["introspect_active"] += 1
    # Dovecot (Debian 2.3.19.1+deb12u7) requires ALL scopes of its "scope" setting, so the answer adds
    # pseudo-scopes "imap"/"smtp" derived from the provider scopes (service_scopes in the config).
    scopes = rec["scope"].split()
    scopes += [svc for svc, real in CFG.get("service_scopes", {}).items() if set(real) & set(scopes)]
    return {"active": True, "token_type": "Bearer", "scope": " ".join(scopes), "client_id": rec["client_id"],
            "username": rec["user"], "email": rec["user"], "sub": rec["user"], "aud": rec["aud"],
            "iss": CFG["base_url"], "exp": rec["exp"], "iat": rec["iat"]}

def approve_device(p, provider):
    """What the user does in the browser at verification_uri: enter the code, sign in, consent."""
    uc = p.get("user_code", "").replace("-", "").upper()
    user = p.get("login", "")
    if not known_user(user):
        raise OAuthError(400, "invalid_request", f"unknown user {user!r}")
    with LOCK:
        for d in DEVICE.values():
            if d["user_code"] == uc and d["provider"] == provider and d["state"] == "pending" and now() <= d["exp"]:
                d["state"] = "denied" if p.get("action") == "deny" else "approved"
                d["user"] = user
                return {"result": d["state"], "user": user}
    raise OAuthError(400, "invalid_request", "unknown or expired user_code")

# ---------------------------------------------------------------- HTTP --------------------------------

# ---------------------------------------------------------------- Microsoft Graph mail -------------
class GraphError(Exception):
    def __init__(self, status, code, message):
        super().__init__(code)
        self.status, self.code, self.message = status, code, message

def graph_box(user):
    """The user's mailbox: well-known folder ids map to themselves; messages carry the change
    counter (seq) of their last change, for delta queries."""
    u = user.lower()
    return GRAPH["boxes"].setdefault(u, {"folders": {"inbox": "Inbox"}, "msgs": {}})

def graph_change(box, mid, **fields):
    GRAPH["seq"] += 1
    box["msgs"].setdefault(mid, {}).update(fields, seq=GRAPH["seq"])

def graph_auth(headers, role):
    auth = headers.get("Authorization", "")
    rec = ACCESS.get(auth[7:]) if auth.startswith("Bearer ") else None
    if rec is None or rec["grant"] in REVOKED or rec["exp"] <= now():
        raise GraphError(401, "InvalidAuthenticationToken", "Access token is empty, expired or not valid.")
    if rec["aud"] != GRAPH_RESOURCE:
        raise GraphError(401, "InvalidAuthenticationToken", "Access token validation failure. Invalid audience.")
    if f"{GRAPH_RESOURCE}/{role}" not in rec["scope"].split():
        raise GraphError(403, "ErrorAccessDenied", "Access is denied. Check credentials and try again.")

def graph_folder_id(box, name):
    fid = box["folders"].get(name.lower()) or (name if name in box["folders"].values() else None)
    if fid is None:
        raise GraphError(404, "ErrorInvalidIdMalformed", f"folder {name} not found")
    return fid

def graph_delta(base, user, folder, q):
    box = graph_box(user)
    fid = graph_folder_id(box, folder)
    since = int(q.get("$deltatoken", ["0"])[0])
    skip = q.get("$skiptoken", [""])[0]
    if skip:
        since, offset = (int(x) for x in skip.split("-"))
    else:
        offset = 0
    changes = sorted((m["seq"], mid, m) for mid, m in box["msgs"].items() if m["seq"] > since)
    items = []
    for _, mid, m in changes:
        if m["folder"] == fid:
            items.append({"id": mid})
        elif since:
            items.append({"id": mid, "@removed": {"reason": "deleted"}})
    link = f"{base}/v1.0/users/{user}/mailFolders/{folder}/messages/delta"
    page = items[offset:offset + 5]
    ans = {"@odata.context": f"{base}/v1.0/$metadata#Collection(message)", "value": page}
    if offset + 5 < len(items):
        ans["@odata.nextLink"] = f"{link}?$skiptoken={since}-{offset + 5}"
    else:
        ans["@odata.deltaLink"] = f"{link}?$deltatoken={GRAPH['seq']}"
    return ans

def graph_route(handler, method):
    """Answers a Graph or /_admin/graph request; False when the path is neither."""
    split = urllib.parse.urlsplit(handler.path)
    path, q = split.path, urllib.parse.parse_qs(split.query)
    parts = path.strip("/").split("/")
    n = int(handler.headers.get("Content-Length") or 0)
    body = handler.rfile.read(n) if n and method == "POST" else b""
    base = CFG["base_url"]
    try:
        with LOCK:
            if path == "/_admin/graph/deliver":
                p = json.loads(body)
                box = graph_box(p["user"])
                mid = "AAMk" + secrets.token_urlsafe(24)
                graph_change(box, mid, folder="Inbox", mime=base64.b64decode(p["mime_b64"]))
                return handler.send_json(200, {"id": mid}) or True
            if path == "/_admin/graph/mailbox":
                box = graph_box(q["user"][0])
                fid = graph_folder_id(box, q["folder"][0])
                return handler.send_json(200, {"ids": [i for i, m in box["msgs"].items() if m["folder"] == fid]}) or True
            if path == "/_admin/graph/sent":
                sent = GRAPH["sent"].get(q["user"][0].lower(), [])
                return handler.send_json(200, {"mime_b64": [base64.b64encode(m).decode() for m in sent]}) or True
            if path == "/_admin/graph/config":
                GRAPH.update(json.loads(body))
                return handler.send_json(200, {}) or True
            if parts[:2] != ["v1.0", "users"] or len(parts) < 4:
                return False
            user = urllib.parse.unquote(parts[2])
            box = graph_box(user)
            rest = parts[3:]
            if method == "GET" and rest[0] == "mailFolders" and len(rest) == 4 and rest[2:] == ["messages", "delta"]:
                graph_auth(handler.headers, "Mail.ReadWrite")
                return handler.send_json(200, graph_delta(base, user, rest[1], q)) or True
            if method == "GET" and rest == ["mailFolders"]:
                graph_auth(handler.headers, "Mail.ReadWrite")
                flt = q.get("$filter", [""])[0]
                name = flt.split("eq", 1)[1].strip().strip("'") if "eq" in flt else ""
                found = [{"id": fid, "displayName": dn} for dn, fid in box["folders"].items() if dn == name.lower()]
                return handler.send_json(200, {"value": found}) or True
            if method == "POST" and rest == ["mailFolders"]:
                graph_auth(handler.headers, "Mail.ReadWrite")
                name = json.loads(body)["displayName"]
                if name.lower() in box["folders"]:
                    raise GraphError(409, "ErrorFolderExists", "A folder with the specified name already exists.")
                fid = "AQMk" + secrets.token_urlsafe(16)
                box["folders"][name.lower()] = fid
                return handler.send_json(201, {"id": fid, "displayName": name}) or True
            if rest[0] == "messages" and len(rest) == 3:
                graph_auth(handler.headers, "Mail.ReadWrite")
                m = box["msgs"].get(rest[1])
                if m is None:
                    raise GraphError(404, "ErrorItemNotFound", "The specified object was not found in the store.")
                if method == "GET" and rest[2] == "$value":
                    handler.send_response(200)
                    handler.send_header("Content-Type", "text/plain")
                    handler.send_header("Content-Length", str(len(m["mime"])))
                    handler.end_headers()
                    handler.wfile.write(m["mime"])
                    return True
                if method == "POST" and rest[2] == "move":
                    dest = json.loads(body)["destinationId"]
                    if dest not in box["folders"].values():
                        raise GraphError(404, "ErrorInvalidIdMalformed", "Id is malformed.")
                    new = "AAMk" + secrets.token_urlsafe(24)
                    graph_change(box, rest[1], folder="(moved)")
                    graph_change(box, new, folder=dest, mime=m["mime"])
                    return handler.send_json(201, {"id": new, "parentFolderId": dest}) or True
            if method == "POST" and rest == ["sendMail"]:
                graph_auth(handler.headers, "Mail.Send")
                if GRAPH["fail_sends"] > 0:
                    GRAPH["fail_sends"] -= 1
                    raise GraphError(503, "ServiceUnavailable", "The service is temporarily unavailable.")
                if not handler.headers.get("Content-Type", "").startswith("text/plain"):
                    raise GraphError(400, "ErrorMimeContentInvalid", "MIME content must be base64 text/plain here.")
                GRAPH["sent"].setdefault(user.lower(), []).append(base64.b64decode(body))
                handler.send_response(202)
                handler.send_header("Content-Length", "0")
                handler.end_headers()
                return True
            raise GraphError(400, "BadRequest", f"Unsupported request {method} {path}")
    except GraphError as e:
        handler.send_json(e.status, {"error": {"code": e.code, "message": e.message}})
        return True

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"      # keep-alive: Dovecot's HTTP client reuses connections

    def log_message(self, fmt, *args):
        sys.stderr.write("%s %s\n" % (time.strftime("%H:%M:%S"), fmt % args))

    def send_json(self, status, obj):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def params(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n).decode() if n else ""
        if raw.lstrip().startswith("{"):
            return json.loads(raw)
        q = urllib.parse.urlsplit(self.path).query
        merged = urllib.parse.parse_qs(q)
        merged.update(urllib.parse.parse_qs(raw))
        return {k: v[0] for k, v in merged.items()}

    def do_GET(self):
        if graph_route(self, "GET"):
            return
        path = urllib.parse.urlsplit(self.path).path
        if path == "/_admin/stats":
            return self.send_json(200, dict(STATS))
        if path in ("/devicelogin", "/device"):
            return self.send_json(200, {"hint": "POST user_code=...&login=user@domain[&action=deny] here"})
        self.send_json(404, {"error": "not_found"})

    def do_POST(self):
        if self.path.startswith("/v1.0/") or self.path.startswith("/_admin/graph/"):
            graph_route(self, "POST")
            return
        path = urllib.parse.urlsplit(self.path).path
        parts = path.strip("/").split("/")
        p = self.params()
        provider = "google"
        try:
            if len(parts) == 4 and parts[1:3] == ["oauth2", "v2.0"] and parts[3] in ("token", "devicecode"):
                provider, tenant = "microsoft", parts[0]
                ans = self.microsoft(parts[3], p, tenant)
            elif path == "/token":
                ans = self.google_token(p)
            elif path == "/device/code":
                ans = device_start(p, "google", "google")
            elif path == "/revoke":
                if not revoke(p.get("token", "")):
                    raise OAuthError(400, "invalid_token", "Token expired or revoked")
                ans = {}
            elif path == "/introspect":
                ans = introspect(p, self.headers)
            elif path in ("/devicelogin", "/device"):
                ans = approve_device(p, "microsoft" if path == "/devicelogin" else "google")
            elif path == "/_admin/grant":
                c = CFG["clients"].get(p.get("client_id", ""))
                if c is None or not known_user(p.get("user", "")):
                    raise OAuthError(400, "invalid_request", "unknown client_id or user")
                ans = delegated(c["provider"], p.get("tenant", "lab"), p["client_id"], p["user"],
                                p.get("scope", "").split())
            elif path == "/_admin/client":
                if not p.get("client_id") or p.get("provider") not in ("microsoft", "google"):
                    raise OAuthError(400, "invalid_request", "client_id and provider (microsoft|google) required")
                with LOCK:
                    CFG["clients"][p["client_id"]] = {k: v for k, v in p.items() if k != "client_id"}
                ans = {"registered": p["client_id"]}
            elif path == "/_admin/revoke":
                ans = {"revoked": revoke(p.get("token", ""))}
            elif path == "/_admin/config":       # e.g. {"introspect_fail": true} or {"access_ttl": 5}
                with LOCK:
                    CFG.update(p)
                ans = {k: CFG[k] for k in p}
            elif path == "/_admin/expire":
                with LOCK:
                    rec = ACCESS.get(p.get("token", ""))
                    if rec:
                        rec["exp"] = now() - 1
                ans = {"expired": rec is not None}
            else:
                return self.send_json(404, {"error": "not_found"})
            self.send_json(200, ans)
        except OAuthError as e:
            self.send_json(e.status, self.error_body(e, provider))

    def microsoft(self, endpoint, p, tenant):
        if endpoint == "devicecode":
            return device_start(p, "microsoft", tenant)
        c = CFG["clients"].get(p.get("client_id", ""), {})
        if c.get("tenants") and tenant not in c["tenants"] + ["common", "organizations"]:
            raise OAuthError(400, "unauthorized_client", f"Application with identifier '{p.get('client_id')}' "
                             f"was not found in the directory '{tenant}'.", 700016)
        STATS["token"] += 1
        gt = p.get("grant_type", "")
        if gt == "client_credentials":
            return grant_client_credentials(p, tenant)
        if gt == "refresh_token":
            return grant_refresh(p, "microsoft", tenant)
        if gt == DEVICE_GRANT:
            return device_poll(p, "microsoft", tenant)
        raise OAuthError(400, "unsupported_grant_type", f"The provided value for grant_type '{gt}' is not "
                         "supported.", 70003)

    def google_token(self, p):
        STATS["token"] += 1
        gt = p.get("grant_type", "")
        if gt == "refresh_token":
            return grant_refresh(p, "google", "google")
        if gt == DEVICE_GRANT:
            return device_poll(p, "google", "google")
        if gt == JWT_GRANT:
            return grant_jwt_bearer(p)
        raise OAuthError(400, "unsupported_grant_type", "Invalid grant_type: " + gt)

    @staticmethod
    def error_body(e, provider):
        if provider != "microsoft":
            return {"error": e.error, "error_description": e.desc}
        code = e.aadsts or 90000
        return {"error": e.error, "error_description": f"AADSTS{code}: {e.desc}", "error_codes": [code],
                "timestamp": time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime()),
                "trace_id": secrets.token_hex(16), "correlation_id": secrets.token_hex(16),
                "error_uri": f"https://login.microsoftonline.com/error?code={code}"}

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", required=True, help="JSON config (clients, users, ports)")
    a = ap.parse_args()
    with open(a.config) as f:
        CFG.update(json.load(f))
    host, port = CFG.get("host", "127.0.0.1"), int(CFG["port"])
    CFG.setdefault("base_url", f"http://{host}:{port}")
    srv = ThreadingHTTPServer((host, port), Handler)
    sys.stderr.write(f"fake IdP listening on {CFG['base_url']}\n")
    srv.serve_forever()

if __name__ == "__main__":
    main()
