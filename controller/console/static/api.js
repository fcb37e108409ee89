// The console's only way out: the public REST API of the server that served it, plus /invokers and /metrics.
// The key travels in an Authorization header to /api/v1 only (never in a URL), and `credentials: "omit"` keeps
// the browser from answering OpenWhisk's 401 challenge with a login prompt of its own or from sending cookies.

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export class WhiskApi {
  constructor(key) {
    this.authorization = "Basic " + btoa(key.trim());
  }

  async request(method, path, { query, body } = {}) {
    const url = new URL("/api/v1" + path, window.location.origin);
    for (const [name, value] of Object.entries(query || {})) {
      if (value !== undefined && value !== null && value !== "") url.searchParams.set(name, String(value));
    }
    const headers = { Authorization: this.authorization, Accept: "application/json" };
    const init = { method, headers, credentials: "omit", cache: "no-store", referrerPolicy: "no-referrer" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(url, init);
    const text = await response.text();
    let parsed = null;
    try {
      parsed = text ? JSON.parse(text) : null;
    } catch {
      parsed = text;
    }
    if (!response.ok) {
      // OpenWhisk's errors are {"error", "code"}; a blocking invoke that failed answers with the record.
      const message = (parsed && (parsed.error || (parsed.response && parsed.response.result && parsed.response.result.error))) || response.statusText;
      throw new ApiError(response.status, typeof message === "string" ? message : JSON.stringify(message));
    }
    return parsed;
  }

  namespaces() {
    return this.request("GET", "/namespaces");
  }

  actions(namespace) {
    return this.request("GET", `/namespaces/${enc(namespace)}/actions`, { query: { limit: 200 } });
  }

  packages(namespace) {
    return this.request("GET", `/namespaces/${enc(namespace)}/packages`, { query: { limit: 200 } });
  }

  putAction(namespace, name, action) {
    return this.request("PUT", `/namespaces/${enc(namespace)}/actions/${encPath(name)}`, {
      query: { overwrite: "true" },
      body: action,
    });
  }

  invoke(namespace, name, params) {
    return this.request("POST", `/namespaces/${enc(namespace)}/actions/${encPath(name)}`, {
      query: { blocking: "true" },
      body: params,
    });
  }

  activations(namespace, filters) {
    return this.request("GET", `/namespaces/${enc(namespace)}/activations`, { query: filters });
  }

  activation(namespace, id) {
    return this.request("GET", `/namespaces/${enc(namespace)}/activations/${enc(id)}`);
  }
}

// /invokers and /metrics are operator endpoints outside /api/v1: fetched without the key.
export async function fetchPublic(path, accept) {
  const response = await fetch(path, {
    credentials: "omit",
    cache: "no-store",
    headers: { Accept: accept },
  });
  if (!response.ok) throw new ApiError(response.status, `${path}: ${response.status} ${response.statusText}`);
  return response.text();
}

function enc(part) {
  return encodeURIComponent(part);
}

// "pkg/action" keeps its slash; each part is escaped.
function encPath(name) {
  return name.split("/").map(enc).join("/");
}
