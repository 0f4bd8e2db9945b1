// The gateway over Connect JSON (POST /nexus.gateway.v1.GatewayService/<Method>), and the sign-in.
//
// Tokens live in sessionStorage: they survive a reload of this tab, and each tab refreshes its
// own sign-in (two tabs presenting the same refresh token would look like a stolen token and
// revoke the whole sign-in). Refreshes are single-flight; a call that meets UNAUTHENTICATED
// refreshes once and retries.

const SERVICE = "/nexus.gateway.v1.GatewayService/";
const TOKENS_KEY = "nexus.tokens";
// Refresh this long before the access token expires, so no call goes out with a stale one.
const REFRESH_EARLY_MS = 60_000;

export class RpcError extends Error {
  constructor(code, message, details = [], status = 0) {
    super(message || code);
    this.code = code;
    this.details = details;
    this.status = status;
  }

  // {field: description} from the BadRequest detail (decoded by the server as `debug`).
  get violations() {
    const out = {};
    for (const detail of this.details) {
      if (detail.type === "google.rpc.BadRequest" && detail.debug) {
        for (const v of detail.debug.fieldViolations || []) out[v.field] = v.description;
      }
    }
    return out;
  }

  get reason() {
    const info = this.details.find((d) => d.type === "google.rpc.ErrorInfo");
    return info && info.debug ? info.debug.reason : "";
  }
}

async function errorOf(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    // not JSON: a proxy's page, a dropped connection
  }
  if (body && body.code) return new RpcError(body.code, body.message, body.details || [], response.status);
  return new RpcError("unavailable", `The server answered ${response.status}.`, [], response.status);
}

async function post(method, body, token) {
  const headers = { "content-type": "application/json", "connect-protocol-version": "1" };
  if (token) headers.authorization = `Bearer ${token}`;
  let response;
  try {
    response = await fetch(SERVICE + method, { method: "POST", headers, body: JSON.stringify(body || {}) });
  } catch {
    throw new RpcError("unavailable", "Nexus cannot be reached. Check your connection and try again.");
  }
  if (!response.ok) throw await errorOf(response);
  return response.json();
}

// -- the sign-in --------------------------------------------------------------------------------

const listeners = new Set();

export const auth = {
  get tokens() {
    try {
      return JSON.parse(sessionStorage.getItem(TOKENS_KEY) || "null");
    } catch {
      return null;
    }
  },
  get signedIn() {
    return Boolean(this.tokens);
  },
  save(tokens) {
    sessionStorage.setItem(TOKENS_KEY, JSON.stringify(tokens));
  },
  clear() {
    sessionStorage.removeItem(TOKENS_KEY);
    for (const listener of listeners) listener();
  },
  onSignOut(listener) {
    listeners.add(listener);
  },
};

let refreshing = null;

export function refresh() {
  if (!refreshing) {
    const tokens = auth.tokens;
    refreshing = (async () => {
      if (!tokens) throw new RpcError("unauthenticated", "Please sign in.");
      try {
        auth.save(await post("Refresh", { refreshToken: tokens.refreshToken }));
      } catch (error) {
        if (error.code !== "unavailable") auth.clear();
        throw error;
      }
    })().finally(() => {
      refreshing = null;
    });
  }
  return refreshing;
}

async function accessToken() {
  const tokens = auth.tokens;
  if (!tokens) throw new RpcError("unauthenticated", "Please sign in.");
  const expires = Date.parse(tokens.accessTokenExpireTime || "") || 0;
  if (expires - Date.now() < REFRESH_EARLY_MS) await refresh();
  return auth.tokens.accessToken;
}

export async function signUp(email, password, nickname) {
  const reply = await post("SignUp", { email, password, nickname });
  auth.save(reply.tokens);
  return reply;
}

export async function signIn(email, password) {
  auth.save(await post("SignIn", { email, password }));
}

export async function signOut() {
  const tokens = auth.tokens;
  try {
    if (tokens) await post("SignOut", { refreshToken: tokens.refreshToken });
  } finally {
    sessionStorage.clear();
    auth.clear();
  }
}

// -- calls as the signed-in user ------------------------------------------------------------------

export async function call(method, body = {}) {
  try {
    return await post(method, body, await accessToken());
  } catch (error) {
    if (!(error instanceof RpcError) || error.code !== "unauthenticated" || !auth.signedIn) throw error;
    await refresh();
    return post(method, body, auth.tokens.accessToken);
  }
}

// An artifact's bytes (GET /v1/artifacts/{id}) as a Blob of its content type.
export async function artifactBlob(artifactId) {
  const get = async (token) =>
    fetch(`/v1/artifacts/${encodeURIComponent(artifactId)}`, { headers: { authorization: `Bearer ${token}` } });
  let response = await get(await accessToken());
  if (response.status === 401) {
    await refresh();
    response = await get(auth.tokens.accessToken);
  }
  if (!response.ok) throw await errorOf(response);
  return response.blob();
}
