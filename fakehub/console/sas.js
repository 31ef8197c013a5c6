// Shared access signatures, signed in the browser (protocol notes 1.4 and 1.5).
//
// A token is "SharedAccessSignature sr={url-encoded resource}&sig={url-encoded base64
// HMAC-SHA256}&se={expiry, Unix seconds}&skn={policy}". The string to sign is the encoded
// resource, a newline and the expiry; the key is the base64-decoded policy key. The key
// never leaves this page: only tokens are sent to the hub.

/** How long a token lives, and how long before its expiry a new one is signed. */
const TOKEN_TTL_SECONDS = 3600;
const RENEW_BEFORE_SECONDS = 300;

/**
 * Parses a service connection string ("HostName=...;SharedAccessKeyName=...;
 * SharedAccessKey=..."). Throws an Error naming what is wrong.
 */
export function parseConnectionString(text) {
  const fields = {};
  for (const part of text.trim().split(";")) {
    if (part.trim() === "") continue;
    const eq = part.indexOf("=");
    if (eq <= 0) throw new Error(`connection string part "${part.slice(0, 40)}" is not Name=value`);
    // Keys are case-insensitive; values keep their case (a base64 key may end in "=").
    fields[part.slice(0, eq).trim().toLowerCase()] = part.slice(eq + 1).trim();
  }
  if (fields.deviceid) {
    throw new Error("this is a device connection string (it has DeviceId); the console needs the hub's service connection string (SharedAccessKeyName=iothubowner)");
  }
  for (const [key, name] of [["hostname", "HostName"], ["sharedaccesskeyname", "SharedAccessKeyName"], ["sharedaccesskey", "SharedAccessKey"]]) {
    if (!fields[key]) throw new Error(`the connection string has no ${name}`);
  }
  const keyBytes = decodeBase64(fields.sharedaccesskey); // throws on a bad key
  if (keyBytes.length === 0) throw new Error("SharedAccessKey is empty");
  return { hostName: fields.hostname, keyName: fields.sharedaccesskeyname, key: fields.sharedaccesskey };
}

/**
 * Signs a policy token for resource (the hub host name) valid until expiry (Unix seconds).
 * It gives the same token as the Go sas.Sign for the same inputs.
 */
export async function signToken(resource, keyName, key, expiry) {
  if (!globalThis.crypto || !crypto.subtle) {
    throw new Error("this page cannot sign tokens: WebCrypto needs a secure context; open the console over HTTPS or from localhost / 127.0.0.1");
  }
  const sr = encodeURIComponent(resource);
  const hmacKey = await crypto.subtle.importKey(
    "raw", decodeBase64(key), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  const mac = await crypto.subtle.sign("HMAC", hmacKey, new TextEncoder().encode(`${sr}\n${expiry}`));
  const sig = encodeURIComponent(encodeBase64(new Uint8Array(mac)));
  return `SharedAccessSignature sr=${sr}&sig=${sig}&se=${expiry}&skn=${encodeURIComponent(keyName)}`;
}

/** Tokens hands out a valid token for the hub, signing a new one shortly before expiry. */
export class Tokens {
  constructor(credentials, now = () => Date.now()) {
    this.credentials = credentials;
    this.now = now;
    this.token = null;
    this.expiry = 0;
  }

  async get() {
    const nowSeconds = Math.floor(this.now() / 1000);
    if (this.token === null || nowSeconds > this.expiry - RENEW_BEFORE_SECONDS) {
      const { hostName, keyName, key } = this.credentials;
      const expiry = nowSeconds + TOKEN_TTL_SECONDS;
      this.token = await signToken(hostName, keyName, key, expiry);
      this.expiry = expiry;
    }
    return this.token;
  }
}

function decodeBase64(text) {
  let binary;
  try {
    binary = atob(text);
  } catch {
    throw new Error("SharedAccessKey is not valid base64");
  }
  return Uint8Array.from(binary, (c) => c.charCodeAt(0));
}

function encodeBase64(bytes) {
  return btoa(String.fromCharCode(...bytes));
}
