/** The embeddable widget's loader: one script tag on any site.
 *
 *   <script src="https://gw.example/widget.js" data-gateway="https://gw.example/"
 *           data-token-endpoint="/chat-token" data-title="Help" data-accent="#0b5cab" async></script>
 *
 * It draws a launcher button inside a shadow root (the host page's CSS cannot reach it) and, on
 * first open, an iframe of the gateway's embed page (its own document: no host CSS, and its calls to the
 * gateway are same-origin, so no CORS set-up). The end-user token comes from the site's own token endpoint
 * (a POST answered by the site's backend, which calls the gateway's POST /v1/tokens) and is handed to
 * the frame with postMessage addressed to the gateway's origin only.
 */

interface Grant {
  token: string;
  conversations: string[];
}

(() => {
  // currentScript is set for classic scripts, async or injected; the attribute search is for anything else.
  const script = (document.currentScript ?? document.querySelector("script[data-token-endpoint]")) as
    | HTMLScriptElement
    | null;
  if (!script) return;
  const data = script.dataset;
  const gateway = new URL(data.gateway || "./", script.src || location.href);
  if (!gateway.pathname.endsWith("/")) gateway.pathname += "/";
  const origin = gateway.origin;
  const endpoint = data.tokenEndpoint;
  const title = (data.title || "Chat").slice(0, 80);
  const accent = data.accent && CSS.supports("color", data.accent) ? data.accent : "#3b5bdb";
  if (!endpoint) {
    console.error("sessionforce widget: data-token-endpoint is required (a URL on your site that answers a token).");
    return;
  }
  const key = `sessionforce-widget:${new URL(endpoint, location.href).href}`;
  const saved = ((): { conversation?: string; open?: boolean } => {
    try {
      return JSON.parse(sessionStorage.getItem(key) || "{}") as { conversation?: string; open?: boolean };
    } catch {
      return {};
    }
  })();
  const save = (): void => {
    try {
      sessionStorage.setItem(key, JSON.stringify(saved));
    } catch {
      // Storage blocked: a reload starts a new conversation.
    }
  };

  const host = document.createElement("sessionforce-chat");
  // Inline !important beats any host stylesheet rule, !important or not.
  host.setAttribute(
    "style",
    "all:initial!important;display:block!important;position:fixed!important;right:0!important;" +
      "bottom:0!important;width:0!important;height:0!important;z-index:2147483000!important;" +
      "visibility:visible!important;opacity:1!important;transform:none!important;",
  );
  const shadow = host.attachShadow({ mode: "open" });
  const css =
    `:host{all:initial}*{box-sizing:border-box}` +
    `.l{position:fixed;right:20px;bottom:20px;width:56px;height:56px;border-radius:50%;border:0;margin:0;` +
    `padding:0;cursor:pointer;background:${accent};color:#fff;box-shadow:0 6px 20px rgba(0,0,0,.25);` +
    `display:flex;align-items:center;justify-content:center}` +
    `.l:focus-visible{outline:3px solid ${accent};outline-offset:3px}.l svg{width:28px;height:28px;fill:currentColor}` +
    `.p{position:fixed;right:20px;bottom:88px;width:380px;height:min(640px,calc(100vh - 110px));` +
    `border-radius:16px;overflow:hidden;box-shadow:0 12px 40px rgba(0,0,0,.28);background:#fff}` +
    `.p[hidden]{display:none}iframe{display:block;width:100%;height:100%;border:0;margin:0;padding:0}` +
    `@media (prefers-color-scheme:dark){.p{background:#161a22}}` +
    `@media (max-width:520px){.p{right:0;bottom:0;width:100vw;height:100%;border-radius:0}.o .l{display:none}}` +
    `@media (prefers-reduced-motion:no-preference){.l{transition:transform .15s}.l:hover{transform:scale(1.06)}}`;
  const wrap = document.createElement("div");
  const launcher = document.createElement("button");
  launcher.className = "l";
  launcher.type = "button";
  launcher.setAttribute("aria-label", `Open chat: ${title}`);
  launcher.setAttribute("aria-expanded", "false");
  // Built node by node: a host page that enforces Trusted Types refuses innerHTML.
  const svgNs = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(svgNs, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("aria-hidden", "true");
  const path = document.createElementNS(svgNs, "path");
  path.setAttribute("d", "M4 3h16a2 2 0 0 1 2 2v11a2 2 0 0 1-2 2H8l-5 4V5a2 2 0 0 1 1-2zm3 6v2h2V9zm4 0v2h2V9zm4 0v2h2V9z");
  svg.append(path);
  launcher.append(svg);
  const panel = document.createElement("div");
  panel.className = "p";
  panel.hidden = true;
  panel.setAttribute("role", "dialog");
  panel.setAttribute("aria-label", title);
  wrap.append(launcher, panel);
  if ("adoptedStyleSheets" in shadow) {
    const sheet = new CSSStyleSheet();
    sheet.replaceSync(css); // constructed sheets are not subject to the host page's style-src CSP
    shadow.adoptedStyleSheets = [sheet];
  } else {
    const style = document.createElement("style");
    style.textContent = css;
    (shadow as ShadowRoot).append(style);
  }
  shadow.append(wrap);

  let frame: HTMLIFrameElement | null = null;

  async function grant(conversation: string | null): Promise<Grant> {
    const response = await fetch(endpoint as string, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ conversation }),
    });
    if (!response.ok) throw new Error(`token endpoint answered ${response.status}`);
    const body = (await response.json()) as Grant;
    saved.conversation = body.conversations[0];
    save();
    return body;
  }

  async function sendGrant(conversation: string | null): Promise<void> {
    try {
      const body = await grant(conversation);
      const fresh = body.conversations[0] !== conversation;
      frame?.contentWindow?.postMessage({ type: "sessionforce:token", grant: body, fresh }, origin);
    } catch (err) {
      console.error("sessionforce widget: no token:", err);
      frame?.contentWindow?.postMessage({ type: "sessionforce:error" }, origin);
    }
  }

  function setOpen(open: boolean): void {
    saved.open = open;
    save();
    panel.hidden = !open;
    wrap.className = open ? "o" : "";
    launcher.setAttribute("aria-expanded", String(open));
    launcher.setAttribute("aria-label", `${open ? "Close" : "Open"} chat: ${title}`);
    if (open && !frame) {
      frame = document.createElement("iframe");
      frame.title = title;
      const params = new URLSearchParams({ title, accent });
      frame.src = `${gateway.href}static/embed.html#${params}`;
      panel.append(frame);
    } else if (open) {
      frame?.focus();
      frame?.contentWindow?.postMessage({ type: "sessionforce:focus" }, origin);
    } else {
      launcher.focus();
    }
  }

  launcher.addEventListener("click", () => setOpen(panel.hidden));
  window.addEventListener("message", (event) => {
    if (!frame || event.source !== frame.contentWindow || event.origin !== origin) return;
    const type = (event.data as { type?: string } | null)?.type;
    if (type === "sessionforce:ready") void sendGrant(saved.conversation ?? null);
    else if (type === "sessionforce:need-token") void sendGrant(saved.conversation ?? null);
    else if (type === "sessionforce:new") void sendGrant(null);
    else if (type === "sessionforce:close") setOpen(false);
  });

  const mount = (): void => {
    document.body.append(host);
    if (saved.open) setOpen(true);
  };
  if (document.body) mount();
  else document.addEventListener("DOMContentLoaded", mount);
})();
