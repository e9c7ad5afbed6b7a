/* Ask-the-documents chat widget. Embed with one tag:
 *   <script src="https://HOST/widget.js" data-title="Ask about the documents" defer></script>
 * Options (data-* on the script tag or on a <qa-chat-widget> element): data-title,
 * data-position (bottom-right | bottom-left), data-accent (a CSS colour), data-open (true),
 * data-api (API base URL; default: where this script came from), data-key (the service's
 * publishable widget key, when its API requires keys), data-placeholder,
 * data-auto="false" (do not add the element; place <qa-chat-widget> yourself).
 * Styling: CSS custom properties on qa-chat-widget, e.g. --qa-accent, --qa-font, --qa-width.
 * Plain JavaScript, no dependencies. Model text only ever becomes text nodes; links are
 * made only for http(s) URLs. */
(function () {
  "use strict";
  var TAG = "qa-chat-widget";
  if (!window.customElements || window.customElements.get(TAG)) return;
  var script = document.currentScript;
  var scriptBase = script && script.src
    ? script.src.replace(/\/widget\.js(?:[?#].*)?$/, "") : location.origin;
  var MAX_HISTORY = 10, MAX_TURN = 2000, MAX_QUESTION = 2000;

  var STYLE = [
    ":host{all:initial;position:fixed;z-index:var(--qa-z-index,2147483000);",
    "bottom:var(--qa-offset,20px);right:var(--qa-offset,20px);",
    "font-family:var(--qa-font,system-ui,-apple-system,'Segoe UI',Roboto,sans-serif);",
    "font-size:var(--qa-font-size,15px);line-height:1.45;color:var(--qa-fg,#1f2328);",
    "--a:var(--qa-accent,var(--qa-accent-data,#2563eb));--af:var(--qa-accent-fg,#fff);",
    "--b:var(--qa-border,#d0d7de);--m:var(--qa-muted,#57606a);--bg:var(--qa-bg,#fff)}",
    ":host([data-position=bottom-left]){right:auto;left:var(--qa-offset,20px)}",
    "*{box-sizing:border-box}",
    "button{font:inherit;cursor:pointer}",
    ":focus-visible{outline:2px solid var(--a);outline-offset:2px}",
    ".launcher{width:56px;height:56px;border-radius:50%;border:0;background:var(--a);",
    "color:var(--af);display:grid;place-items:center;box-shadow:0 4px 14px rgba(0,0,0,.25)}",
    ".launcher svg{width:26px;height:26px;fill:currentColor}",
    ".panel{position:absolute;bottom:68px;right:0;width:var(--qa-width,370px);",
    "max-width:calc(100vw - 32px);height:var(--qa-height,520px);",
    "max-height:calc(100vh - 100px);background:var(--bg);border:1px solid var(--b);",
    "border-radius:var(--qa-radius,14px);box-shadow:0 8px 30px rgba(0,0,0,.2);",
    "display:flex;flex-direction:column;overflow:hidden}",
    ":host([data-position=bottom-left]) .panel{right:auto;left:0}",
    ".panel[hidden]{display:none}",
    "header{display:flex;align-items:center;gap:4px;padding:8px 8px 8px 14px;",
    "background:var(--a);color:var(--af)}",
    "h2{flex:1;margin:0;font-size:1em;font-weight:600;overflow:hidden;",
    "text-overflow:ellipsis;white-space:nowrap}",
    "header button{background:transparent;border:0;color:inherit;padding:4px 8px;",
    "border-radius:6px;font-size:.9em}",
    ".log{flex:1;overflow-y:auto;padding:12px;display:flex;flex-direction:column;gap:10px}",
    ".intro{color:var(--m);font-size:.9em;margin:0}",
    ".msg{max-width:90%;padding:8px 11px;border-radius:12px;overflow-wrap:anywhere}",
    ".text{white-space:pre-wrap}",
    ".user{align-self:flex-end;background:var(--qa-user-bg,#e8f0fe)}",
    ".bot{align-self:flex-start;background:var(--qa-bot-bg,#f3f4f6)}",
    ".refused .text{font-style:italic;color:var(--m)}",
    ".short{font-weight:700;margin-bottom:2px}",
    ".error{background:#fdecea;color:#8a1c12}",
    ".bot[aria-busy=true] .text::after{content:'\\2026';color:var(--m)}",
    ".chip{font-size:.78em;margin:0 1px;padding:0 5px;border-radius:8px;",
    "border:1px solid var(--a);background:var(--bg);color:var(--a);vertical-align:1px}",
    ".chip[aria-expanded=true]{background:var(--a);color:var(--af)}",
    "span.chip{opacity:.6;cursor:default}",
    "blockquote{margin:6px 0 0;padding:6px 9px;border-left:3px solid var(--a);",
    "background:var(--bg);font-size:.9em;white-space:normal}",
    "blockquote[hidden]{display:none}",
    "cite{display:block;font-style:normal;font-size:.85em;color:var(--m);margin-top:4px}",
    ".note{display:block;font-size:.8em;color:var(--m);margin-top:4px}",
    "a{color:var(--a)}",
    "form{display:flex;gap:8px;padding:10px;border-top:1px solid var(--b)}",
    "textarea{flex:1;resize:none;font:inherit;color:inherit;background:var(--bg);",
    "padding:8px;border:1px solid var(--b);border-radius:8px;height:42px;max-height:120px}",
    ".send{border:0;border-radius:8px;padding:0 14px;background:var(--a);color:var(--af)}",
    ".sr{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);",
    "white-space:nowrap}"
  ].join("");

  /* A DOM element with properties (text via textContent, never as HTML) and children. */
  function el(tag, props, children) {
    var node = document.createElement(tag);
    Object.keys(props || {}).forEach(function (key) {
      if (key === "text") node.textContent = props[key];
      else if (key === "class") node.className = props[key];
      else node.setAttribute(key, props[key]);
    });
    (children || []).forEach(function (child) { if (child) node.appendChild(child); });
    return node;
  }

  /* The URL if it is an absolute http(s) URL, else null. */
  function safeUrl(text) {
    try {
      var url = new URL(text);
      return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
    } catch (e) {
      return null;
    }
  }

  function bool(value) { return value === "" || value === "true" || value === "1"; }

  /* Parses a text/event-stream body, calling onEvent(name, data) for each JSON event. */
  async function readEvents(body, onEvent) {
    var reader = body.getReader(), decoder = new TextDecoder(), buffer = "";
    for (;;) {
      var step = await reader.read();
      if (step.done) break;
      buffer += decoder.decode(step.value, { stream: true }).replace(/\r\n?/g, "\n");
      var cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        var block = buffer.slice(0, cut), name = "message", data = [];
        buffer = buffer.slice(cut + 2);
        block.split("\n").forEach(function (line) {
          if (!line || line.charAt(0) === ":") return;
          var colon = line.indexOf(":");
          var field = colon < 0 ? line : line.slice(0, colon);
          var value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
          if (field === "event") name = value;
          else if (field === "data") data.push(value);
        });
        if (data.length) onEvent(name, JSON.parse(data.join("\n")));
      }
    }
  }

  var TOKENS = /\[(\d{1,3})\]|\[([^\[\]\n]{1,200})\]\(([^()\s]{1,2000})\)|\bhttps?:\/\/[^\s<>()\[\]"']+/g;

  class ChatWidget extends HTMLElement {
    connectedCallback() {
      if (this.shadowRoot) return;
      var opts = this.dataset;
      var api = safeUrl(opts.api || "") || safeUrl(scriptBase) || location.origin;
      this.api = api.replace(/\/+$/, "");
      this.title_ = opts.title || "Ask the documents";
      this.key = "qa-widget:" + this.api;
      this.apiKey = opts.key || "";
      this.state = this.load();
      if (opts.accent && window.CSS && window.CSS.supports("color", opts.accent)) {
        this.style.setProperty("--qa-accent-data", opts.accent);
      }
      this.build(opts.placeholder || "Ask a question…");
      this.renderLog();
      var open = this.state.open === undefined ? bool(opts.open || "false") : this.state.open;
      if (open) this.setOpen(true, false);
    }

    build(placeholder) {
      var root = this.attachShadow({ mode: "open" });
      var icon = document.createElementNS("http://www.w3.org/2000/svg", "svg");
      icon.setAttribute("viewBox", "0 0 24 24");
      icon.setAttribute("aria-hidden", "true");
      var path = document.createElementNS("http://www.w3.org/2000/svg", "path");
      path.setAttribute("d", "M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H9l-5 4v-4a2 2 0 0 1-2-2V6" +
        "a2 2 0 0 1 2-2zm3 6a1.5 1.5 0 1 0 0 .01zm5 0a1.5 1.5 0 1 0 0 .01zm5 0a1.5 1.5 0 1 0 0 .01z");
      icon.appendChild(path);
      this.launcher = el("button", { class: "launcher", type: "button",
        "aria-label": "Open chat: " + this.title_, "aria-expanded": "false",
        "aria-controls": "qa-panel" }, [icon]);
      this.log = el("div", { class: "log", role: "log", "aria-label": "Conversation" });
      this.input = el("textarea", { id: "qa-input", rows: "1", placeholder: placeholder,
        maxlength: String(MAX_QUESTION), "aria-label": "Your question" });
      this.send = el("button", { class: "send", type: "submit", text: "Send" });
      this.form = el("form", {}, [this.input, this.send]);
      var clear = el("button", { type: "button", class: "clear", text: "Clear",
        "aria-label": "Clear the conversation" });
      var close = el("button", { type: "button", class: "close", text: "\u2715",
        "aria-label": "Close chat" });
      this.panel = el("section", { class: "panel", id: "qa-panel", role: "dialog",
        "aria-label": this.title_, hidden: "" },
        [el("header", {}, [el("h2", { text: this.title_ }), clear, close]), this.log, this.form]);
      root.append(el("style", { text: STYLE }), this.panel, this.launcher);

      var self = this;
      this.launcher.addEventListener("click", function () { self.setOpen(self.panel.hidden); });
      close.addEventListener("click", function () { self.setOpen(false); });
      clear.addEventListener("click", function () { self.clear(); });
      this.panel.addEventListener("keydown", function (event) {
        if (event.key === "Escape") { event.preventDefault(); self.setOpen(false); }
      });
      this.input.addEventListener("keydown", function (event) {
        if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
          event.preventDefault();
          self.form.requestSubmit();
        }
      });
      this.form.addEventListener("submit", function (event) {
        event.preventDefault();
        if (self.controller) { self.controller.abort(); return; }
        var question = self.input.value.trim();
        if (question) { self.input.value = ""; self.ask(question); }
      });
    }

    setOpen(open, focus) {
      this.panel.hidden = !open;
      this.launcher.setAttribute("aria-expanded", String(open));
      this.launcher.setAttribute("aria-label", (open ? "Close chat: " : "Open chat: ") + this.title_);
      this.state.open = open;
      this.save();
      if (focus === false) return;
      if (open) { this.input.focus(); this.log.scrollTop = this.log.scrollHeight; }
      else this.launcher.focus();
    }

    load() {
      try {
        var saved = JSON.parse(sessionStorage.getItem(this.key) || "null");
        if (saved && Array.isArray(saved.messages)) return saved;
      } catch (e) { /* storage blocked or corrupt: start afresh */ }
      return { messages: [] };
    }

    save() {
      try { sessionStorage.setItem(this.key, JSON.stringify(this.state)); } catch (e) { /* full */ }
    }

    clear() {
      if (this.controller) this.controller.abort();
      this.state.messages = [];
      this.save();
      this.renderLog();
      this.input.focus();
    }

    history() {
      var turns = this.state.messages.filter(function (m) { return !m.error && !m.pending; });
      return turns.slice(-MAX_HISTORY).map(function (m) {
        return { role: m.role, content: String(m.text).slice(0, MAX_TURN) };
      });
    }

    renderLog() {
      this.log.textContent = "";
      if (!this.state.messages.length) {
        this.log.appendChild(el("p", { class: "intro",
          text: "Ask a question about the documents. Answers cite their sources." }));
      }
      var self = this;
      this.state.messages.forEach(function (m, i) { self.log.appendChild(self.renderMessage(m, i)); });
      this.log.scrollTop = this.log.scrollHeight;
    }

    renderMessage(m, index) {
      var node = el("div", { class: "msg " + (m.role === "user" ? "user" : "bot") +
        (m.refused ? " refused" : "") + (m.error ? " error" : "") });
      if (m.pending) node.setAttribute("aria-busy", "true");
      if (m.role === "user") {
        node.appendChild(el("span", { class: "sr", text: "You: " }));
        node.appendChild(el("div", { class: "text", text: m.text }));
        return node;
      }
      node.appendChild(el("span", { class: "sr", text: "Answer: " }));
      var text = el("div", { class: "text" }), quotes = el("div", { class: "quotes" });
      this.fillText(text, quotes, m.text || "", m.citations || [], "q" + index);
      if (m.short) node.appendChild(el("div", { class: "short", text: m.short }));
      node.append(text, quotes);
      if (m.error) node.appendChild(el("span", { class: "note", role: "alert", text: m.error }));
      if (m.stopped) node.appendChild(el("span", { class: "note", text: "(stopped)" }));
      return node;
    }

    /* Text nodes for the model's words; [n] chips for citations; http(s) links only. */
    fillText(target, quotes, text, citations, prefix) {
      var byN = {};
      citations.forEach(function (c) { byN[c.n] = c; });
      var last = 0, match;
      TOKENS.lastIndex = 0;
      while ((match = TOKENS.exec(text)) !== null) {
        var raw = match[0], node = null, tail = "";
        if (match[1] !== undefined) {
          node = this.chip(Number(match[1]), byN[match[1]], quotes, prefix);
        } else if (match[2] !== undefined) {
          var href = safeUrl(match[3]);
          if (href) node = this.link(href, match[2]);
        } else {
          tail = (/[.,;:!?]+$/.exec(raw) || [""])[0];
          raw = raw.slice(0, raw.length - tail.length);
          var url = safeUrl(raw);
          if (url) node = this.link(url, raw);
        }
        if (!node) continue;  // left as plain text
        target.appendChild(document.createTextNode(text.slice(last, match.index)));
        target.appendChild(node);
        if (tail) target.appendChild(document.createTextNode(tail));
        last = match.index + match[0].length;
      }
      target.appendChild(document.createTextNode(text.slice(last)));
    }

    link(href, label) {
      return el("a", { href: href, target: "_blank", rel: "noopener noreferrer nofollow",
        text: label });
    }

    chip(n, citation, quotes, prefix) {
      if (!citation) return el("span", { class: "chip", text: "[" + n + "]" });
      var id = prefix + "-s" + n, name = citation.title || citation.source || "document";
      var quote = quotes.querySelector("#" + id);
      if (!quote) {
        quote = el("blockquote", { id: id, hidden: "" }, [
          document.createTextNode(citation.snippet || ""),
          el("cite", { text: "[" + n + "] " + name + (citation.source && citation.title ?
            " (" + citation.source + ")" : "") + (citation.page ? ", page " + citation.page : "") +
            ", characters " + citation.start + "\u2013" +
            citation.end + (citation.supported ? "" : " (support not confirmed)") })]);
        quotes.appendChild(quote);
      }
      var button = el("button", { class: "chip", type: "button", text: "[" + n + "]",
        "aria-expanded": "false", "aria-controls": id,
        "aria-label": "Source " + n + ": " + name });
      button.addEventListener("click", function () {
        var open = button.getAttribute("aria-expanded") !== "true";
        quote.hidden = !open;
        button.setAttribute("aria-expanded", String(open));
      });
      return button;
    }

    update(m) {
      var index = this.state.messages.indexOf(m), old = this.log.children[index];
      if (old) this.log.replaceChild(this.renderMessage(m, index), old);
      this.log.scrollTop = this.log.scrollHeight;
    }

    setBusy(busy) {
      this.send.textContent = busy ? "Stop" : "Send";
      this.send.setAttribute("aria-label", busy ? "Stop the answer" : "Send the question");
    }

    async ask(question) {
      if (this.controller) return;
      var user = { role: "user", text: question };
      var bot = { role: "assistant", text: "", citations: [], pending: true };
      var history = this.history();
      this.state.messages.push(user, bot);
      this.renderLog();
      var controller = this.controller = new AbortController();
      this.setBusy(true);
      var self = this, done = false;
      var headers = { "Content-Type": "application/json", "Accept": "text/event-stream" };
      if (this.apiKey) headers.Authorization = "Bearer " + this.apiKey;
      try {
        var reply = await fetch(this.api + "/api/ask/stream", {
          method: "POST", mode: "cors", credentials: "omit", signal: controller.signal,
          headers: headers,
          body: JSON.stringify({ question: question, history: history })
        });
        if (!reply.ok) throw new Error(await this.problem(reply));
        await readEvents(reply.body, function (name, data) {
          if (name === "token") bot.text += data.text;
          else if (name === "citation") bot.citations.push(data);
          else if (name === "done") {
            bot.text = data.text;
            bot.citations = data.citations || [];
            bot.refused = !!data.refused;
            bot.short = data.refused ? "" : data.short || "";
            done = true;
          } else if (name === "error") throw new Error(data.error || "the answer failed");
          self.update(bot);
        });
        if (!done) throw new Error("the answer was cut off; please ask again");
      } catch (error) {
        if (error && error.name === "AbortError") bot.stopped = true;
        else if (error instanceof TypeError) {
          bot.error = "Could not reach the answer service (offline, or this site is not allowed).";
        } else bot.error = "Sorry: " + (error && error.message ? error.message : String(error));
      } finally {
        this.controller = null;
        bot.pending = false;
        this.setBusy(false);
        this.save();
        this.update(bot);
      }
    }

    async problem(reply) {
      var message = "the service answered " + reply.status;
      try { message = (await reply.json()).error || message; } catch (e) { /* not JSON */ }
      var retry = reply.headers.get("Retry-After");
      return message + (retry ? " (retry in " + retry + " s)" : "");
    }
  }

  window.customElements.define(TAG, ChatWidget);

  function mount() {
    if (script && script.dataset.auto === "false") return;
    if (document.querySelector(TAG)) return;
    var widget = document.createElement(TAG);
    if (script) {
      Object.keys(script.dataset).forEach(function (k) { widget.dataset[k] = script.dataset[k]; });
    }
    document.body.appendChild(widget);
  }

  if (document.body) mount();
  else document.addEventListener("DOMContentLoaded", mount);
})();
