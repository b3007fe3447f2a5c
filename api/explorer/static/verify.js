// verify.js: the entry page's "Verify in this browser". It recomputes the RFC 6962 root of the
// tree from the entry's canonical body and its inclusion proof (RFC 9162 section 2.1.3.2), with
// WebCrypto's SHA-256, and compares it with the root hash in the checkpoint shown on the page
// (C2SP tlog-checkpoint: origin, tree size and base64 root on the first three lines). It does not
// check the checkpoint's signature; `quirectl get` does.
"use strict";

(function () {
  function bytesOf(b64) {
    const s = atob(b64);
    const out = new Uint8Array(s.length);
    for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
    return out;
  }

  function fromHex(h) {
    if (h.length % 2 !== 0 || /[^0-9a-f]/i.test(h)) throw new Error("not hex: " + h);
    const out = new Uint8Array(h.length / 2);
    for (let i = 0; i < out.length; i++) out[i] = parseInt(h.substr(2 * i, 2), 16);
    return out;
  }

  function toHex(b) {
    return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  }

  async function sha256(prefix, ...parts) {
    let n = 1;
    for (const p of parts) n += p.length;
    const buf = new Uint8Array(n);
    buf[0] = prefix;
    let off = 1;
    for (const p of parts) {
      buf.set(p, off);
      off += p.length;
    }
    return new Uint8Array(await crypto.subtle.digest("SHA-256", buf));
  }

  // rootFromProof follows RFC 9162 section 2.1.3.2 with BigInt indices, so trees past 2^32
  // entries work too.
  async function rootFromProof(index, size, leaf, proof) {
    if (index >= size) throw new Error("index " + index + " is not below tree size " + size);
    let fn = index;
    let sn = size - 1n;
    let r = await sha256(0x00, leaf);
    for (const p of proof) {
      if (sn === 0n) throw new Error("the proof is longer than the tree is deep");
      if ((fn & 1n) === 1n || fn === sn) {
        r = await sha256(0x01, p, r);
        if ((fn & 1n) === 0n) {
          while ((fn & 1n) === 0n && fn !== 0n) {
            fn >>= 1n;
            sn >>= 1n;
          }
        }
      } else {
        r = await sha256(0x01, r, p);
      }
      fn >>= 1n;
      sn >>= 1n;
    }
    if (sn !== 0n) throw new Error("the proof is shorter than the tree is deep");
    return r;
  }

  function show(el, state, text) {
    el.dataset.state = state;
    el.className = state === "ok" ? "ok" : "bad";
    el.textContent = text;
  }

  async function verify(box, result) {
    const lines = document.getElementById("checkpoint").textContent.split("\n");
    const cpSize = BigInt(lines[1]);
    const cpRoot = toHex(bytesOf(lines[2]));
    const size = BigInt(box.dataset.size);
    if (cpSize !== size) {
      show(result, "bad", "Not verified: the proof is for tree size " + size + " but the checkpoint is for " + cpSize + ".");
      return;
    }
    const proof = box.dataset.proof === "" ? [] : box.dataset.proof.split(",").map(fromHex);
    const root = toHex(await rootFromProof(BigInt(box.dataset.index), size, bytesOf(box.dataset.leaf), proof));
    if (root === cpRoot) {
      show(result, "ok", "Verified in this browser: the root computed from this entry and its " + proof.length +
        " proof hashes is " + root + ", the checkpoint's root for tree size " + size + ".");
    } else {
      show(result, "bad", "Not verified: the computed root " + root + " differs from the checkpoint's root " + cpRoot + ".");
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    const box = document.getElementById("verify");
    if (!box) return;
    const button = document.getElementById("verify-button");
    const result = document.getElementById("verify-result");
    if (!window.crypto || !crypto.subtle) {
      show(result, "unavailable", "This browser offers no WebCrypto here (it needs HTTPS or localhost); quirectl get checks the same proof.");
      return;
    }
    button.disabled = false;
    button.addEventListener("click", function () {
      show(result, "working", "Verifying…");
      verify(box, result).catch(function (err) {
        show(result, "bad", "Not verified: " + err.message);
      });
    });
  });
})();
