// The hub's REST API, called with a freshly signed policy token on every request.

import { Tokens } from "./sas.js";

const API_VERSION = "2021-04-12";

/** ApiError is a failed call: status is the HTTP status (0 when the hub did not answer). */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
  }
}

/** Hub calls one fake hub with the credentials of a service connection string. */
export class Hub {
  constructor(credentials) {
    this.hostName = credentials.hostName;
    this.keyName = credentials.keyName;
    this.tokens = new Tokens(credentials);
  }

  /** authorization returns the Authorization header value. */
  authorization() {
    return this.tokens.get();
  }

  /**
   * request calls method path with an optional JSON body and If-Match etag, and resolves to
   * {status, etag, body} with the JSON answer (null when there is none). It rejects with an
   * ApiError carrying IoT Hub's error name and message.
   */
  async request(method, path, { body, ifMatch, signal } = {}) {
    const headers = { Authorization: await this.authorization() };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (ifMatch) headers["If-Match"] = ifMatch;
    const url = `${path}${path.includes("?") ? "&" : "?"}api-version=${API_VERSION}`;
    let resp;
    try {
      resp = await fetch(url, {
        method, headers, signal, cache: "no-store",
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (err) {
      if (err.name === "AbortError") throw err;
      throw new ApiError(0, "", `${method} ${path}: the hub did not answer (${err.message})`);
    }
    const text = await resp.text();
    if (!resp.ok) throw errorFromResponse(method, path, resp, text);
    let parsed = null;
    if (text !== "") parsed = JSON.parse(text);
    return { status: resp.status, etag: resp.headers.get("ETag"), body: parsed };
  }
}

/**
 * errorFromResponse reads IoT Hub's error shape: {"Message": "<JSON document as a string>",
 * "ExceptionMessage": "ErrorCode:Name;text"}, with the name in the iothub-errorcode header.
 */
export function errorFromResponse(method, path, resp, text) {
  const code = resp.headers.get("iothub-errorcode") || "";
  let message = text.slice(0, 300);
  try {
    const outer = JSON.parse(text);
    message = JSON.parse(outer.Message).message || outer.ExceptionMessage || message;
  } catch {
    // Not IoT Hub's shape (a proxy, a crash): show the start of the raw text.
  }
  return new ApiError(resp.status, code, `${method} ${path}: ${resp.status}${code ? " " + code : ""}: ${message}`);
}

/** twinPath is the REST path of a device twin, or of a module twin when moduleId is set. */
export function twinPath(deviceId, moduleId) {
  const device = `/twins/${encodeURIComponent(deviceId)}`;
  return moduleId ? `${device}/modules/${encodeURIComponent(moduleId)}` : device;
}
