// Basalt's web console: one page, no dependencies, served from the binary. Every call is an
// ordinary S3 or admin request signed here with SigV4, so the console can do exactly what the
// signed-in key may do and nothing more; the server holds no console sessions.
"use strict";

const REGION = document.querySelector('meta[name="basalt-region"]').content || "us-east-1";
const PART_SIZE = 8 * 1024 * 1024;
const MULTIPART_FROM = 16 * 1024 * 1024;
const ADMIN = "/basalt-admin/v1/";

// ---- SHA-256 and HMAC (plain JS: WebCrypto is missing on plain-http origins) ----

const K256 = new Uint32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);

function rotr(x, n) { return (x >>> n) | (x << (32 - n)); }

function sha256(bytes) {
  const padded = new Uint8Array((((bytes.length + 9) + 63) >> 6) << 6);
  padded.set(bytes);
  padded[bytes.length] = 0x80;
  const view = new DataView(padded.buffer);
  const bits = bytes.length * 8;
  view.setUint32(padded.length - 8, Math.floor(bits / 0x100000000));
  view.setUint32(padded.length - 4, bits >>> 0);
  const h = new Uint32Array([0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
    0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]);
  const w = new Uint32Array(64);
  for (let off = 0; off < padded.length; off += 64) {
    for (let i = 0; i < 16; i++) w[i] = view.getUint32(off + i * 4);
    for (let i = 16; i < 64; i++) {
      const s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >>> 3);
      const s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >>> 10);
      w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    let [a, b, c, d, e, f, g, k] = h;
    for (let i = 0; i < 64; i++) {
      const t1 = (k + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + K256[i] + w[i]) | 0;
      const t2 = ((rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c))) | 0;
      k = g; g = f; f = e; e = (d + t1) | 0; d = c; c = b; b = a; a = (t1 + t2) | 0;
    }
    h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e; h[5] += f; h[6] += g; h[7] += k;
  }
  const out = new Uint8Array(32);
  const outView = new DataView(out.buffer);
  h.forEach((word, i) => outView.setUint32(i * 4, word));
  return out;
}

const utf8 = (text) => new TextEncoder().encode(text);
const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");

function hmac(key, message) {
  let block = key.length > 64 ? sha256(key) : key;
  const padded = new Uint8Array(64);
  padded.set(block);
  const inner = new Uint8Array(64 + message.length);
  const outer = new Uint8Array(64 + 32);
  for (let i = 0; i < 64; i++) { inner[i] = padded[i] ^ 0x36; outer[i] = padded[i] ^ 0x5c; }
  inner.set(message, 64);
  outer.set(sha256(inner), 64);
  return sha256(outer);
}

// ---- SigV4 ----

function uriEncode(text) {
  return encodeURIComponent(text).replace(/[!'()*]/g, (c) => "%" + c.charCodeAt(0).toString(16).toUpperCase());
}

function objectPath(bucket, key) {
  let path = "/" + uriEncode(bucket);
  if (key !== undefined) path += "/" + key.split("/").map(uriEncode).join("/");
  return path;
}

function canonicalQuery(query) {
  return Object.keys(query).sort().map((k) => uriEncode(k) + "=" + uriEncode(String(query[k]))).join("&");
}

function amzDate(now) {
  return now.toISOString().replace(/[-:]/g, "").replace(/\.\d{3}/, "");
}

function signingKey(secret, day) {
  let key = hmac(utf8("AWS4" + secret), utf8(day));
  key = hmac(key, utf8(REGION));
  key = hmac(key, utf8("s3"));
  return hmac(key, utf8("aws4_request"));
}

// Signs a request with Authorization headers; `headers` gains the x-amz-* it needs.
function signHeaders(creds, method, path, query, headers, payloadHash) {
  const stamp = amzDate(new Date());
  const day = stamp.slice(0, 8);
  headers["x-amz-date"] = stamp;
  headers["x-amz-content-sha256"] = payloadHash;
  if (creds.sessionToken) headers["x-amz-security-token"] = creds.sessionToken;
  const signed = { host: location.host };
  for (const [name, value] of Object.entries(headers)) {
    const lower = name.toLowerCase();
    if (lower.startsWith("x-amz-")) signed[lower] = String(value).trim();
  }
  const names = Object.keys(signed).sort();
  const canonical = [method, path, canonicalQuery(query),
    names.map((n) => n + ":" + signed[n] + "\n").join(""), names.join(";"), payloadHash].join("\n");
  const scope = `${day}/${REGION}/s3/aws4_request`;
  const toSign = ["AWS4-HMAC-SHA256", stamp, scope, hex(sha256(utf8(canonical)))].join("\n");
  const signature = hex(hmac(signingKey(creds.secretKey, day), utf8(toSign)));
  headers["Authorization"] = `AWS4-HMAC-SHA256 Credential=${creds.accessKey}/${scope}, SignedHeaders=${names.join(";")}, Signature=${signature}`;
}

// A presigned GET URL: the browser downloads it itself, streamed to disk.
function presignedUrl(creds, path, query, expires) {
  const stamp = amzDate(new Date());
  const day = stamp.slice(0, 8);
  const scope = `${day}/${REGION}/s3/aws4_request`;
  const q = Object.assign({}, query, {
    "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
    "X-Amz-Credential": `${creds.accessKey}/${scope}`,
    "X-Amz-Date": stamp,
    "X-Amz-Expires": String(expires),
    "X-Amz-SignedHeaders": "host",
  });
  if (creds.sessionToken) q["X-Amz-Security-Token"] = creds.sessionToken;
  const canonical = ["GET", path, canonicalQuery(q), "host:" + location.host + "\n", "host", "UNSIGNED-PAYLOAD"].join("\n");
  const toSign = ["AWS4-HMAC-SHA256", stamp, scope, hex(sha256(utf8(canonical)))].join("\n");
  q["X-Amz-Signature"] = hex(hmac(signingKey(creds.secretKey, day), utf8(toSign)));
  return path + "?" + canonicalQuery(q);
}

// ---- requests ----

class S3Failure extends Error {
  constructor(status, code, message) {
    super(code ? `${code}: ${message}` : `HTTP ${status}: ${message}`);
    this.status = status;
    this.code = code;
  }
}

async function failureOf(resp) {
  const text = await resp.text();
  const doc = text.startsWith("<") ? new DOMParser().parseFromString(text, "application/xml") : null;
  const code = doc ? textOf(doc, "Code") : "";
  let message = doc ? textOf(doc, "Message") : "";
  if (!doc && text) {
    try { message = JSON.parse(text).error || text; } catch (_) { message = text; }
  }
  return new S3Failure(resp.status, code, message || resp.statusText || "request failed");
}

// One signed request; `body` is a string (hashed) or a Blob (sent as UNSIGNED-PAYLOAD).
async function request(method, path, { query = {}, headers = {}, body = null } = {}) {
  const creds = session.creds;
  const sent = Object.assign({}, headers);
  const payloadHash = body instanceof Blob ? "UNSIGNED-PAYLOAD" : hex(sha256(utf8(body || "")));
  signHeaders(creds, method, path, query, sent, payloadHash);
  const qs = canonicalQuery(query);
  const resp = await fetch(path + (qs ? "?" + qs : ""), { method, headers: sent, body, cache: "no-store" });
  if (!resp.ok) throw await failureOf(resp);
  return resp;
}

async function xml(method, path, options) {
  const resp = await request(method, path, options);
  return new DOMParser().parseFromString(await resp.text(), "application/xml");
}

async function admin(method, call, query = {}, body = null) {
  const resp = await request(method, ADMIN + call, { query, body, headers: body ? { "content-type": "application/json" } : {} });
  return resp.json();
}

// An upload with progress (fetch reports none): resolves with the response headers' ETag.
function uploadWithProgress(path, query, blob, contentType, onProgress) {
  return new Promise((resolve, reject) => {
    const headers = contentType ? { "content-type": contentType } : {};
    signHeaders(session.creds, "PUT", path, query, headers, "UNSIGNED-PAYLOAD");
    const xhr = new XMLHttpRequest();
    const qs = canonicalQuery(query);
    xhr.open("PUT", path + (qs ? "?" + qs : ""));
    for (const [name, value] of Object.entries(headers)) xhr.setRequestHeader(name, value);
    xhr.upload.onprogress = (e) => onProgress(e.loaded);
    xhr.onload = () => {
      if (xhr.status >= 200 && xhr.status < 300) resolve(xhr.getResponseHeader("ETag"));
      else {
        const doc = new DOMParser().parseFromString(xhr.responseText || "<x/>", "application/xml");
        reject(new S3Failure(xhr.status, textOf(doc, "Code"), textOf(doc, "Message") || xhr.statusText));
      }
    };
    xhr.onerror = () => reject(new S3Failure(0, "", "the connection failed"));
    xhr.send(blob);
  });
}

async function uploadFile(bucket, key, file, onProgress) {
  const path = objectPath(bucket, key);
  const type = file.type || "application/octet-stream";
  if (file.size < MULTIPART_FROM) {
    await uploadWithProgress(path, {}, file, type, onProgress);
    return;
  }
  const created = await xml("POST", path, { query: { uploads: "" }, headers: { "content-type": type } });
  const uploadId = textOf(created, "UploadId");
  const parts = [];
  try {
    for (let offset = 0, number = 1; offset < file.size; offset += PART_SIZE, number++) {
      const etag = await uploadWithProgress(path, { partNumber: number, uploadId }, file.slice(offset, offset + PART_SIZE), null,
        (loaded) => onProgress(offset + loaded));
      parts.push(`<Part><PartNumber>${number}</PartNumber><ETag>${escapeXml(etag)}</ETag></Part>`);
    }
    await request("POST", path, {
      query: { uploadId },
      headers: { "content-type": "application/xml" },
      body: `<CompleteMultipartUpload>${parts.join("")}</CompleteMultipartUpload>`,
    });
  } catch (e) {
    await request("DELETE", path, { query: { uploadId } }).catch(() => {});
    throw e;
  }
}

// ---- small helpers ----

function textOf(node, tag) {
  const found = node.getElementsByTagName(tag)[0];
  return found ? found.textContent : "";
}

function children(node, tag) {
  return Array.from(node.childNodes).filter((c) => c.nodeName === tag);
}

function escapeXml(text) {
  return String(text).replace(/[<>&'"]/g, (c) => ({ "<": "&lt;", ">": "&gt;", "&": "&amp;", "'": "&apos;", '"': "&quot;" })[c]);
}

// Builds an element; strings become text nodes, never markup.
function el(tag, attrs = {}, ...content) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (value !== false && value !== null && value !== undefined) node.setAttribute(name, value === true ? "" : value);
  }
  for (const item of content.flat()) {
    if (item !== null && item !== undefined) node.append(item instanceof Node ? item : String(item));
  }
  return node;
}

function size(bytes) {
  if (bytes === null || bytes === undefined || bytes === "") return "";
  const n = Number(bytes);
  const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  let i = 0, v = n;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return (i === 0 ? String(n) : v.toFixed(1)) + " " + units[i];
}

function when(ms) { return ms ? new Date(ms).toISOString().replace("T", " ").slice(0, 19) : ""; }

function showMessage(text, info = false) {
  const box = document.getElementById("message");
  box.textContent = text;
  box.className = info ? "info" : "";
  box.hidden = false;
  clearTimeout(showMessage.timer);
  showMessage.timer = setTimeout(() => { box.hidden = true; }, info ? 4000 : 10000);
}

// Runs an action from a button; its failure is shown, not thrown away.
function guarded(action) {
  return async (event) => {
    if (event) event.preventDefault();
    try { await action(event); } catch (e) { showMessage(e.message); }
  };
}

function view(...content) {
  const app = document.getElementById("app-view");
  app.replaceChildren(...content.flat().filter((c) => c !== null && c !== undefined));
  return app;
}

// ---- session ----

const session = {
  creds: null,
  load() {
    const saved = sessionStorage.getItem("basalt-console");
    this.creds = saved ? JSON.parse(saved) : null;
  },
  save(creds) {
    this.creds = creds;
    sessionStorage.setItem("basalt-console", JSON.stringify(creds));
  },
  clear() {
    this.creds = null;
    sessionStorage.removeItem("basalt-console");
  },
};

async function signIn(event) {
  event.preventDefault();
  const creds = {
    accessKey: document.getElementById("access-key").value.trim(),
    secretKey: document.getElementById("secret-key").value,
    sessionToken: document.getElementById("session-token").value.trim(),
  };
  session.creds = creds;
  try {
    await request("GET", "/");
  } catch (e) {
    // A key that may not list buckets is still a key: only a refused signature is refused.
    if (e.code !== "AccessDenied") {
      session.clear();
      showMessage("Sign-in refused: " + e.message);
      return;
    }
  }
  session.save(creds);
  document.getElementById("secret-key").value = "";
  show("#/");
}

// Shows a route: a new hash renders through `hashchange`, the same one renders again here.
function show(route) {
  if (location.hash === route) render();
  else location.hash = route;
}

function signOut() {
  session.clear();
  show("#/");
}

// ---- buckets ----

async function bucketsView() {
  const doc = await xml("GET", "/");
  const rows = children(doc.documentElement, "Buckets").flatMap((b) => children(b, "Bucket")).map((b) => {
    const name = textOf(b, "Name");
    return el("tr", { "data-bucket": name },
      el("td", {}, el("a", { href: "#/b/" + encodeURIComponent(name) + "/" }, name)),
      el("td", {}, textOf(b, "CreationDate").replace("T", " ").slice(0, 19)),
      el("td", {}, el("button", { class: "danger", onclick: guarded(async () => {
        if (!confirm(`Delete bucket ${name}? It must be empty.`)) return;
        await request("DELETE", objectPath(name));
        showMessage(`Bucket ${name} deleted`, true);
        render();
      }) }, "Delete")));
  });
  const input = el("input", { id: "new-bucket", placeholder: "new-bucket-name" });
  return [
    el("h1", {}, "Buckets"),
    el("form", { class: "toolbar", onsubmit: guarded(async () => {
      const name = input.value.trim();
      await request("PUT", objectPath(name));
      showMessage(`Bucket ${name} created`, true);
      render();
    }) }, input, el("button", { id: "create-bucket", type: "submit" }, "Create bucket")),
    el("table", { id: "buckets" }, el("tr", {}, el("th", {}, "Name"), el("th", {}, "Created"), el("th", {}, "")), rows),
    rows.length ? null : el("p", { class: "hint" }, "No buckets yet.")];
}

// ---- objects ----

function crumbs(bucket, prefix) {
  const parts = prefix.split("/").filter(Boolean);
  const links = [el("a", { href: "#/" }, "buckets"), " / ", el("a", { href: `#/b/${encodeURIComponent(bucket)}/` }, bucket)];
  parts.forEach((part, i) => {
    const upTo = parts.slice(0, i + 1).join("/") + "/";
    links.push(" / ", el("a", { href: `#/b/${encodeURIComponent(bucket)}/${encodeURIComponent(upTo)}` }, part));
  });
  return el("div", { class: "crumbs" }, links);
}

async function objectsView(bucket, prefix) {
  const table = el("table", { id: "objects" },
    el("tr", {}, el("th", {}, "Name"), el("th", { class: "num" }, "Size"), el("th", {}, "Last modified"), el("th", {}, "")));
  const more = el("button", { class: "secondary", hidden: true }, "Load more");
  let token = null;
  async function page() {
    const query = { "list-type": "2", delimiter: "/", prefix, "max-keys": "200" };
    if (token) query["continuation-token"] = token;
    const doc = await xml("GET", objectPath(bucket), { query });
    for (const p of children(doc.documentElement, "CommonPrefixes")) {
      const sub = textOf(p, "Prefix");
      table.append(el("tr", { "data-prefix": sub },
        el("td", {}, el("a", { href: `#/b/${encodeURIComponent(bucket)}/${encodeURIComponent(sub)}` }, sub.slice(prefix.length))),
        el("td", {}), el("td", {}), el("td", {})));
    }
    for (const o of children(doc.documentElement, "Contents")) {
      const key = textOf(o, "Key");
      table.append(el("tr", { "data-key": key },
        el("td", {}, el("a", { href: `#/o/${encodeURIComponent(bucket)}/${encodeURIComponent(key)}` }, key.slice(prefix.length))),
        el("td", { class: "num" }, size(textOf(o, "Size"))),
        el("td", {}, textOf(o, "LastModified").replace("T", " ").slice(0, 19)),
        el("td", {},
          el("button", { class: "secondary", onclick: () => download(bucket, key) }, "Download"), " ",
          el("button", { class: "danger", onclick: guarded(async () => {
            if (!confirm(`Delete ${key}?`)) return;
            await request("DELETE", objectPath(bucket, key));
            showMessage(`${key} deleted`, true);
            render();
          }) }, "Delete"))));
    }
    token = textOf(doc, "IsTruncated") === "true" ? textOf(doc, "NextContinuationToken") : null;
    more.hidden = !token;
  }
  more.addEventListener("click", guarded(page));
  await page();
  const files = el("input", { id: "upload-files", type: "file", multiple: true });
  const uploads = el("div", { class: "uploads", id: "uploads" });
  const folder = el("input", { id: "new-folder", placeholder: "folder name" });
  return [
    el("h1", {}, "Objects"),
    crumbs(bucket, prefix),
    el("div", { class: "toolbar" },
      files,
      el("button", { id: "upload", onclick: guarded(async () => {
        for (const file of Array.from(files.files)) {
          const bar = el("progress", { max: file.size || 1, value: 0 });
          const line = el("div", {}, file.name + " ", bar);
          uploads.append(line);
          await uploadFile(bucket, prefix + file.name, file, (loaded) => { bar.value = loaded; });
          bar.value = file.size || 1;
          line.append(" done");
        }
        showMessage("Upload finished", true);
        render();
      }) }, "Upload"),
      folder,
      el("button", { class: "secondary", onclick: guarded(async () => {
        const name = folder.value.trim().replace(/\/+$/, "");
        if (!name) return;
        await request("PUT", objectPath(bucket, prefix + name + "/"), { body: "" });
        render();
      }) }, "New folder"),
      el("a", { href: `#/bucket/${encodeURIComponent(bucket)}` }, "Bucket settings")),
    uploads, table, more];
}

function download(bucket, key) {
  const name = key.split("/").pop() || "download";
  const url = presignedUrl(session.creds, objectPath(bucket, key),
    { "response-content-disposition": `attachment; filename="${name.replace(/["\\]/g, "_")}"` }, 300);
  const link = el("a", { href: url, download: name, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
}

async function optional(fetcher) {
  try { return await fetcher(); } catch (e) { return e instanceof S3Failure ? null : Promise.reject(e); }
}

async function objectView(bucket, key) {
  const path = objectPath(bucket, key);
  const head = await request("HEAD", path);
  const facts = [["Key", key], ["Size", size(head.headers.get("content-length"))],
    ["Content type", head.headers.get("content-type")], ["ETag", head.headers.get("etag")],
    ["Last modified", head.headers.get("last-modified")], ["Version", head.headers.get("x-amz-version-id")],
    ["Encryption", head.headers.get("x-amz-server-side-encryption")],
    ["Storage class", head.headers.get("x-amz-storage-class") || "STANDARD"]];
  const meta = [];
  head.headers.forEach((value, name) => { if (name.startsWith("x-amz-meta-")) meta.push([name.slice(11), value]); });
  const tags = await optional(() => xml("GET", path, { query: { tagging: "" } }));
  const retention = await optional(() => xml("GET", path, { query: { retention: "" } }));
  const hold = await optional(() => xml("GET", path, { query: { "legal-hold": "" } }));
  const versions = await optional(() => xml("GET", objectPath(bucket), { query: { versions: "", prefix: key } }));
  const pairs = (list) => el("table", {}, list.map(([k, v]) => el("tr", {}, el("th", {}, k), el("td", { class: "mono" }, v || ""))));
  const versionRows = versions ? Array.from(versions.documentElement.childNodes)
    .filter((n) => (n.nodeName === "Version" || n.nodeName === "DeleteMarker") && textOf(n, "Key") === key)
    .map((n) => el("tr", {},
      el("td", { class: "mono" }, textOf(n, "VersionId")),
      el("td", {}, n.nodeName === "DeleteMarker" ? "delete marker" : size(textOf(n, "Size"))),
      el("td", {}, textOf(n, "LastModified").replace("T", " ").slice(0, 19)),
      el("td", {}, textOf(n, "IsLatest") === "true" ? "latest" : ""))) : [];
  const tagList = tags ? Array.from(tags.getElementsByTagName("Tag")).map((t) => [textOf(t, "Key"), textOf(t, "Value")]) : [];
  const lock = [];
  if (retention) lock.push(["Retention", `${textOf(retention, "Mode")} until ${textOf(retention, "RetainUntilDate")}`]);
  if (hold) lock.push(["Legal hold", textOf(hold, "Status")]);
  return [
    el("h1", {}, "Object"),
    crumbs(bucket, key.includes("/") ? key.slice(0, key.lastIndexOf("/") + 1) : ""),
    el("div", { class: "toolbar" },
      el("button", { id: "download", onclick: () => download(bucket, key) }, "Download"),
      el("button", { class: "danger", id: "delete-object", onclick: guarded(async () => {
        if (!confirm(`Delete ${key}?`)) return;
        await request("DELETE", path);
        location.hash = `#/b/${encodeURIComponent(bucket)}/${encodeURIComponent(key.slice(0, key.lastIndexOf("/") + 1))}`;
      }) }, "Delete")),
    el("div", { id: "object-facts" }, pairs(facts)),
    el("h2", {}, "Metadata"), meta.length ? pairs(meta) : el("p", { class: "hint" }, "No user metadata."),
    el("h2", {}, "Tags"), tagList.length ? el("div", { id: "object-tags" }, pairs(tagList)) : el("p", { class: "hint" }, "No tags."),
    el("h2", {}, "Object lock"), lock.length ? pairs(lock) : el("p", { class: "hint" }, "No retention or legal hold."),
    el("h2", {}, "Versions"),
    el("table", { id: "versions" }, el("tr", {}, el("th", {}, "Version id"), el("th", {}, "Size"), el("th", {}, "Last modified"), el("th", {}, "")), versionRows)];
}

async function bucketView(bucket) {
  const path = objectPath(bucket);
  const versioning = await optional(() => xml("GET", path, { query: { versioning: "" } }));
  const lock = await optional(() => xml("GET", path, { query: { "object-lock": "" } }));
  const encryption = await optional(() => xml("GET", path, { query: { encryption: "" } }));
  const policy = await optional(async () => (await request("GET", path, { query: { policy: "" } })).text());
  return [
    el("h1", {}, "Bucket " + bucket),
    crumbs(bucket, ""),
    el("table", {},
      el("tr", {}, el("th", {}, "Versioning"), el("td", {}, (versioning && textOf(versioning, "Status")) || "never enabled")),
      el("tr", {}, el("th", {}, "Object lock"), el("td", {}, (lock && textOf(lock, "ObjectLockEnabled")) || "off")),
      el("tr", {}, el("th", {}, "Default encryption"), el("td", {}, (encryption && textOf(encryption, "SSEAlgorithm")) || "none"))),
    el("h2", {}, "Bucket policy"),
    policy ? el("pre", { class: "mono" }, policy) : el("p", { class: "hint" }, "No bucket policy.")];
}

// ---- users, keys, policies ----

async function adminView() {
  const users = await admin("GET", "users");
  const keys = await admin("GET", "keys");
  const secretBox = el("div", { id: "new-secret" });
  const userRows = users.map((u) => {
    const policies = el("textarea", { rows: 2, "data-policies": u.name }, JSON.stringify(u.policies));
    return el("tr", { "data-user": u.name },
      el("td", {}, u.name), el("td", {}, u.disabled ? "disabled" : "active"), el("td", {}, when(u.created_ms)),
      el("td", {}, policies, el("button", { class: "secondary", onclick: guarded(async () => {
        let list;
        try { list = JSON.parse(policies.value); } catch (e) { throw new Error("Policies must be a JSON list: " + e.message); }
        await admin("PUT", "users/policies", { name: u.name }, JSON.stringify(list));
        showMessage(`Policies of ${u.name} saved`, true);
      }) }, "Save policies")),
      el("td", {},
        el("button", { class: "secondary", onclick: guarded(async () => {
          const made = await admin("POST", "keys", { user: u.name });
          secretBox.replaceChildren(el("div", { class: "secret" },
            "New key for ", u.name, ": access key ", el("code", { id: "new-access-key" }, made.access_key),
            ", secret ", el("code", { id: "new-secret-key" }, made.secret_key), ". The secret is shown once."));
          await refreshKeys();
        }) }, "New key"), " ",
        el("button", { class: "secondary", onclick: guarded(async () => {
          await admin("POST", u.disabled ? "users/enable" : "users/disable", { name: u.name });
          render();
        }) }, u.disabled ? "Enable" : "Disable"), " ",
        el("button", { class: "danger", onclick: guarded(async () => {
          if (!confirm(`Delete user ${u.name}?`)) return;
          await admin("DELETE", "users", { name: u.name });
          render();
        }) }, "Delete")));
  });
  const keyTable = el("table", { id: "keys" });
  async function refreshKeys(list) {
    const current = list || await admin("GET", "keys");
    keyTable.replaceChildren(el("tr", {}, el("th", {}, "Access key"), el("th", {}, "User"), el("th", {}, "Created"), el("th", {}, "")),
      ...current.map((k) => el("tr", { "data-access-key": k.access_key },
        el("td", { class: "mono" }, k.access_key), el("td", {}, k.user), el("td", {}, when(k.created_ms)),
        el("td", {}, el("button", { class: "danger", onclick: guarded(async () => {
          if (!confirm(`Revoke ${k.access_key}?`)) return;
          await admin("DELETE", "keys", { id: k.access_key });
          await refreshKeys();
        }) }, "Revoke")))));
  }
  await refreshKeys(keys);
  const name = el("input", { id: "new-user", placeholder: "user name" });
  return [
    el("h1", {}, "Users & keys"),
    el("form", { class: "toolbar", onsubmit: guarded(async () => {
      await admin("POST", "users", { name: name.value.trim() });
      showMessage(`User ${name.value.trim()} created`, true);
      render();
    }) }, name, el("button", { id: "create-user", type: "submit" }, "Create user")),
    el("p", { class: "hint" }, 'Policies: a JSON list of canned names ("readonly", "readwrite", "writeonly") or IAM policy documents.'),
    el("table", { id: "users" }, el("tr", {}, el("th", {}, "User"), el("th", {}, "State"), el("th", {}, "Created"),
      el("th", {}, "Policies"), el("th", {}, "")), userRows),
    el("h2", {}, "Access keys"), secretBox, keyTable];
}

// ---- health ----

function chart(title, samples, valueOf, format) {
  const canvas = el("canvas", { width: 360, height: 140 });
  const points = [];
  for (let i = 1; i < samples.length; i++) {
    const v = valueOf(samples[i - 1], samples[i]);
    if (v !== null && Number.isFinite(v)) points.push([samples[i].t_ms, v]);
  }
  const ctx = canvas.getContext("2d");
  ctx.font = "11px system-ui, sans-serif";
  ctx.fillStyle = "#66707a";
  if (points.length === 0) {
    ctx.fillText("collecting samples…", 10, 70);
  } else {
    const max = Math.max(...points.map((p) => p[1]), 1e-9);
    const t0 = points[0][0], t1 = Math.max(points[points.length - 1][0], t0 + 1);
    ctx.strokeStyle = "#2f5f8f";
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    points.forEach(([t, v], i) => {
      const x = 40 + ((t - t0) / (t1 - t0)) * 310, y = 125 - (v / max) * 105;
      if (i === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
    });
    ctx.stroke();
    ctx.fillText(format(max), 2, 18);
    ctx.fillText(format(0), 2, 128);
    ctx.fillText(`${Math.round((t1 - t0) / 60000)} min`, 300, 138);
  }
  const last = points.length ? format(points[points.length - 1][1]) : "—";
  return el("div", { class: "chart", "data-chart": title }, el("h3", {}, `${title}: ${last}`), canvas);
}

async function healthView() {
  const [status, cluster, history] = await Promise.all([admin("GET", "status"), admin("GET", "cluster/status"), admin("GET", "metrics/history")]);
  const samples = history.samples;
  const seconds = (a, b) => Math.max((b.t_ms - a.t_ms) / 1000, 1e-3);
  const drives = status.drives.map((d) => el("tr", {},
    el("td", {}, d.index), el("td", { class: "mono" }, d.path),
    el("td", { class: d.online ? "up" : "down" }, d.online ? "online" : "offline"),
    el("td", { class: "num" }, size(d.total_bytes !== null && d.available_bytes !== null ? d.total_bytes - d.available_bytes : null)),
    el("td", { class: "num" }, size(d.total_bytes))));
  clearTimeout(healthView.timer);
  healthView.timer = setTimeout(() => { if (location.hash === "#/health") render(); }, 10000);
  const nodes = (cluster.nodes || []).map((n) => el("tr", {},
    el("td", {}, n.name), el("td", { class: n.up ? "up" : "down" }, n.up ? "up" : "down"), el("td", {}, n.zone),
    el("td", { class: "mono" }, n.s3), el("td", { class: "num" }, size(n.used_bytes)), el("td", { class: "num" }, size(n.capacity_bytes)),
    el("td", {}, cluster.leader === n.name ? "leader" : "")));
  return [
    el("h1", {}, "Health"),
    el("p", {}, `Redundancy ${status.redundancy}; heal queue ${status.healer.queued}; stripes healed ${status.healer.stripes_healed}; ` +
      `worker restarts ${status.worker_restarts}` + (status.running ? "; a sweep is running" : "")),
    el("div", { class: "charts", id: "charts" },
      chart("Requests/s", samples, (a, b) => (b.requests - a.requests) / seconds(a, b), (v) => v.toFixed(1)),
      chart("Errors/s", samples, (a, b) => (b.errors - a.errors) / seconds(a, b), (v) => v.toFixed(2)),
      chart("Mean latency", samples, (a, b) => b.requests > a.requests ? (b.latency_us - a.latency_us) / (b.requests - a.requests) / 1000 : null,
        (v) => v.toFixed(1) + " ms"),
      chart("In MB/s", samples, (a, b) => (b.received_bytes - a.received_bytes) / seconds(a, b) / 1e6, (v) => v.toFixed(2)),
      chart("Out MB/s", samples, (a, b) => (b.sent_bytes - a.sent_bytes) / seconds(a, b) / 1e6, (v) => v.toFixed(2)),
      chart("Used capacity", samples.length > 1 ? samples : [], (_a, b) => b.used_bytes, size)),
    el("h2", {}, "Drives"),
    el("table", { id: "drives" }, el("tr", {}, el("th", {}, "#"), el("th", {}, "Path"), el("th", {}, "State"),
      el("th", { class: "num" }, "Used"), el("th", { class: "num" }, "Total")), drives),
    el("h2", {}, "Nodes"),
    nodes.length
      ? el("table", { id: "nodes" }, el("tr", {}, el("th", {}, "Node"), el("th", {}, "State"), el("th", {}, "Zone"), el("th", {}, "S3"),
        el("th", { class: "num" }, "Used"), el("th", { class: "num" }, "Capacity"), el("th", {}, "Raft")), nodes)
      : el("p", { class: "hint", id: "nodes" }, "A single node (no cluster)."),
    cluster.term !== undefined ? el("p", {}, `Raft term ${cluster.term}, commit ${cluster.commit_index}, applied ${cluster.applied_index}, layout epoch ${cluster.layout_epoch}`) : null];
}

// ---- routing ----

async function render() {
  // Renders overlap (a click while a page loads): only the newest one may paint, or a slow
  // older page would replace the one asked for last.
  const mine = ++render.latest;
  session.load();
  const signedIn = Boolean(session.creds);
  document.getElementById("sign-in-view").hidden = signedIn;
  document.getElementById("app-view").hidden = !signedIn;
  document.getElementById("nav").hidden = !signedIn;
  document.getElementById("sign-out").hidden = !signedIn;
  document.getElementById("who").textContent = signedIn ? session.creds.accessKey : "";
  // Signed out, no page of the last key may stay behind in the hidden view.
  if (!signedIn) return void view();
  const route = location.hash.replace(/^#/, "") || "/";
  const [, kind, bucket, rest] = route.match(/^\/([a-z]*)\/?([^/]*)\/?(.*)$/) || [];
  let content;
  try {
    if (kind === "b") content = await objectsView(decodeURIComponent(bucket), decodeURIComponent(rest));
    else if (kind === "o") content = await objectView(decodeURIComponent(bucket), decodeURIComponent(rest));
    else if (kind === "bucket") content = await bucketView(decodeURIComponent(bucket));
    else if (kind === "admin") content = await adminView();
    else if (kind === "health") content = await healthView();
    else content = await bucketsView();
  } catch (e) {
    content = [el("h1", {}, "Something went wrong"), el("p", { id: "error" }, e.message)];
  }
  if (mine === render.latest) view(...content);
}
render.latest = 0;

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("sign-in").addEventListener("submit", signIn);
  document.getElementById("sign-out").addEventListener("click", signOut);
  window.addEventListener("hashchange", render);
  render();
});
