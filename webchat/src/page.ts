/** Entry point of the chat page: the gateway's own page at "/" and the widget's frame (embed.html).
 *
 * Where the token comes from:
 * - page: `#token=<end-user token>` in the address (read once, then removed from it), else the token
 *   this tab already had (sessionStorage), else the gateway's demo token (only offered on the emulator);
 * - embed: the widget loader in the embedding page posts it (it got it from the site's token endpoint).
 */

import { call } from "./api";
import { Chat } from "./chat";
import { el } from "./render";
import type { TokenGrant } from "./types";
import { readJson, sessionStore, writeJson } from "./util";

const root = document.getElementById("sessionforce-chat") as HTMLElement;
const mode = document.documentElement.dataset.mode === "embed" ? "embed" : "page";
const baseMeta = document.querySelector<HTMLMetaElement>('meta[name="sessionforce-gateway"]');
const base = new URL(baseMeta?.content ?? "./", location.href).href;
const params = new URLSearchParams(location.hash.slice(1));
const title = (params.get("title") ?? "").slice(0, 80) || "Chat";
const STORE_KEY = `sessionforce:page:${base}`;

applyAccent(params.get("accent"));
document.title = title;

let chat: Chat | null = null;

function applyAccent(accent: string | null): void {
  if (accent && CSS.supports("color", accent)) document.documentElement.style.setProperty("--sf-accent", accent);
}

/** The claims of a JWT, read without verifying (the gateway verifies; we only want conv and exp). */
function claims(token: string): { conv?: string[]; exp?: number } {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(part.padEnd(part.length + ((4 - (part.length % 4)) % 4), "="))) as {
      conv?: string[];
      exp?: number;
    };
  } catch {
    return {};
  }
}

function grantFromToken(token: string): TokenGrant | null {
  const { conv, exp } = claims(token);
  if (!Array.isArray(conv) || !conv.length) return null;
  return { token, conversations: conv, expires_at: exp ? new Date(exp * 1000).toISOString() : undefined };
}

function usable(grant: TokenGrant | null): grant is TokenGrant {
  if (!grant?.token || !grant.conversations?.length) return false;
  const exp = claims(grant.token).exp;
  return exp === undefined || exp * 1000 > Date.now() + 5000;
}

function problem(text: string): void {
  const box = el("div", "sf-chat sf-problem");
  box.append(el("h1", "sf-title", title), el("p", "", text));
  root.replaceChildren(box);
}

function start(grant: TokenGrant, restart: (() => void) | null, extra: Partial<ConstructorParameters<typeof Chat>[0]>): void {
  chat?.destroy();
  chat = new Chat({
    container: root,
    base,
    grant,
    title,
    closable: false,
    tokenSource: null,
    restart,
    ...extra,
  });
}

async function demoGrant(): Promise<TokenGrant | null> {
  try {
    const response = await call(new URL("v1/demo/token", base).href, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: "{}",
    });
    return (await response.json()) as TokenGrant;
  } catch {
    return null;
  }
}

async function startPage(anew: boolean): Promise<void> {
  const store = sessionStore();
  const fromHash = params.get("token");
  let grant: TokenGrant | null = fromHash ? grantFromToken(fromHash) : null;
  if (fromHash) {
    // Keep the token out of the history and out of anything that copies the address.
    params.delete("token");
    const rest = params.toString();
    history.replaceState(null, "", `${location.pathname}${location.search}${rest ? `#${rest}` : ""}`);
    if (!grant) return problem("The token in this address is not a gateway end-user token.");
  }
  const stored = readJson<TokenGrant & { demo?: boolean }>(store, STORE_KEY);
  if (!grant && !anew && usable(stored)) grant = stored;
  let demo = Boolean(!fromHash && (grant === null || stored?.demo));
  let fresh = false;
  if (!grant) {
    grant = await demoGrant();
    if (!grant) {
      return problem(
        "This gateway needs an end-user token: open this page as /#token=<token> with a token minted by " +
          "POST /v1/tokens, or embed the widget on your site (see docs/webchat.md).",
      );
    }
    demo = true;
    fresh = true;
  }
  const save = (g: TokenGrant): void => writeJson(store, STORE_KEY, { ...g, demo });
  save(grant);
  start(grant, demo ? () => void startPage(true) : null, { saveGrant: save, fresh });
  chat?.view.focusInput();
}

/** In the widget's frame: the loader in the embedding page sends tokens; we ask it for new ones. */
function startEmbed(): void {
  const parentWindow = window.parent;
  let waiting: ((grant: TokenGrant) => void) | null = null;
  const ask = (type: string): void => parentWindow.postMessage({ type }, "*");
  window.addEventListener("message", (event) => {
    if (event.source !== parentWindow || typeof event.data !== "object" || event.data === null) return;
    const data = event.data as { type?: string; grant?: TokenGrant; fresh?: boolean };
    if (data.type === "sessionforce:focus") chat?.view.focusInput();
    if (data.type === "sessionforce:error" && !chat) problem("The chat could not start: this site did not give it a token.");
    if (data.type !== "sessionforce:token" || !data.grant?.token || !data.grant.conversations?.length) return;
    const grant = data.grant;
    if (waiting) {
      waiting(grant);
      waiting = null;
      return;
    }
    start(grant, () => ask("sessionforce:new"), {
      closable: true,
      close: () => ask("sessionforce:close"),
      fresh: data.fresh === true,
      tokenSource: () =>
        new Promise<TokenGrant>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error("no token from the embedding page")), 20_000);
          waiting = (grant) => {
            clearTimeout(timer);
            resolve(grant);
          };
          ask("sessionforce:need-token");
        }),
    });
    chat?.view.focusInput();
  });
  root.replaceChildren(el("p", "sf-loading", "Loading…"));
  ask("sessionforce:ready");
}

if (mode === "embed") startEmbed();
else void startPage(false);
