/** The chat's frame: header with the link status, the message log (an ARIA log, so new messages are
 * announced), the streaming area (not announced until a message is final) and the composer. */

import { el } from "./render";
import type { LinkStatus } from "./stream";

export interface ViewOptions {
  title: string;
  /** Show a close button (the widget); the page has none. */
  closable: boolean;
  canRestart: boolean;
}

export interface ViewHandlers {
  submit(text: string): void;
  restart(): void;
  end(): void;
  close(): void;
}

const STATUS_TEXT: Record<LinkStatus, string> = {
  connecting: "Connecting…",
  online: "Online",
  offline: "Offline: messages will be sent when the connection is back",
  closed: "Disconnected",
};

export function icon(path: string): SVGSVGElement {
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("focusable", "false");
  const p = document.createElementNS("http://www.w3.org/2000/svg", "path");
  p.setAttribute("d", path);
  svg.append(p);
  return svg;
}

const AVATAR_ICON =
  "M12 2a2 2 0 0 1 2 2c0 .7-.4 1.4-1 1.7V7h4a4 4 0 0 1 4 4v6a4 4 0 0 1-4 4H7a4 4 0 0 1-4-4v-6a4 4 0 0 1 4-4h4V5.7A2 2 0 0 1 12 2zM9 11.5a1.5 1.5 0 1 0 0 3 1.5 1.5 0 0 0 0-3zm6 0a1.5 1.5 0 1 0 0 3 1.5 1.5 0 0 0 0-3z";
const SEND_ICON = "M3.4 20.4 21 12 3.4 3.6 3.4 10l12.6 2-12.6 2z";
const CLOSE_ICON = "M6.4 5 5 6.4 10.6 12 5 17.6 6.4 19l5.6-5.6 5.6 5.6 1.4-1.4-5.6-5.6L19 6.4 17.6 5 12 10.6z";

export class ChatView {
  readonly root: HTMLElement;
  readonly log: HTMLOListElement;
  readonly drafts: HTMLElement;
  readonly input: HTMLTextAreaElement;
  private readonly scroller: HTMLElement;
  private readonly status: HTMLElement;
  private readonly typing: HTMLElement;
  private readonly typingText: HTMLElement;
  private readonly sendButton: HTMLButtonElement;
  private readonly endButton: HTMLButtonElement;
  private readonly restartButton: HTMLButtonElement;
  private readonly closedBar: HTMLElement;

  constructor(container: HTMLElement, options: ViewOptions, private readonly handlers: ViewHandlers) {
    this.root = el("div", "sf-chat");
    const header = el("header", "sf-header");
    const titles = el("div", "sf-titles");
    const heading = el("h1", "sf-title", options.title);
    heading.id = "sf-title";
    this.status = el("p", "sf-status", STATUS_TEXT.connecting);
    this.status.setAttribute("role", "status");
    this.status.dataset.state = "connecting";
    titles.append(heading, this.status);
    const actions = el("div", "sf-actions");
    this.restartButton = el("button", "sf-button sf-restart", "New chat");
    this.restartButton.type = "button";
    this.restartButton.hidden = !options.canRestart;
    this.restartButton.addEventListener("click", () => handlers.restart());
    this.endButton = el("button", "sf-button sf-end", "End chat");
    this.endButton.type = "button";
    this.endButton.addEventListener("click", () => handlers.end());
    actions.append(this.restartButton, this.endButton);
    if (options.closable) {
      const close = el("button", "sf-icon-button sf-close");
      close.type = "button";
      close.setAttribute("aria-label", "Close chat");
      close.append(icon(CLOSE_ICON));
      close.addEventListener("click", () => handlers.close());
      actions.append(close);
    }
    const avatar = el("span", "sf-avatar");
    avatar.append(icon(AVATAR_ICON));
    header.append(avatar, titles, actions);

    this.scroller = el("div", "sf-scroll");
    this.log = el("ol", "sf-log");
    this.log.setAttribute("role", "log");
    this.log.setAttribute("aria-live", "polite");
    this.log.setAttribute("aria-relevant", "additions");
    this.log.setAttribute("aria-labelledby", "sf-title");
    this.drafts = el("div", "sf-drafts");
    this.drafts.setAttribute("aria-hidden", "true");
    this.typing = el("div", "sf-typing");
    this.typing.hidden = true;
    const dots = el("span", "sf-dots");
    dots.append(el("span"), el("span"), el("span"));
    this.typingText = el("span", "sf-typing-text", "");
    this.typing.append(dots, this.typingText);
    this.scroller.append(this.log, this.drafts, this.typing);

    const form = el("form", "sf-composer");
    const label = el("label", "sf-sr", "Message");
    label.htmlFor = "sf-input";
    this.input = el("textarea", "sf-input");
    this.input.id = "sf-input";
    this.input.rows = 1;
    this.input.placeholder = "Write a message…";
    this.input.setAttribute("enterkeyhint", "send");
    this.input.maxLength = 4000;
    this.sendButton = el("button", "sf-send");
    this.sendButton.type = "submit";
    this.sendButton.setAttribute("aria-label", "Send");
    this.sendButton.append(icon(SEND_ICON));
    form.append(label, this.input, this.sendButton);
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.submit();
    });
    this.input.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        this.submit();
      } else if (event.key === "Escape" && options.closable) {
        handlers.close();
      }
    });
    this.input.addEventListener("input", () => this.fit());

    this.closedBar = el("div", "sf-closed");
    this.closedBar.hidden = true;
    this.root.append(header, this.scroller, this.closedBar, form);
    container.replaceChildren(this.root);
  }

  private submit(): void {
    const text = this.input.value.trim();
    if (!text || this.input.disabled) return;
    this.input.value = "";
    this.fit();
    this.handlers.submit(text);
  }

  /** Grow the textarea with its text, up to a few lines (CSSOM: allowed by the page's CSP). */
  private fit(): void {
    this.input.style.height = "auto";
    this.input.style.height = `${Math.min(this.input.scrollHeight, 160)}px`;
  }

  setStatus(status: LinkStatus, detail?: string): void {
    this.status.dataset.state = status;
    const text = detail ?? STATUS_TEXT[status];
    if (this.status.textContent !== text) this.status.textContent = text;
  }

  setPlaceholder(text: string): void {
    this.input.placeholder = text;
  }

  /** The conversation is over (ended by someone, or the token is gone): no more input. */
  setClosed(reason: string | null, canRestart: boolean): void {
    const closed = reason !== null;
    this.input.disabled = closed;
    this.sendButton.disabled = closed;
    this.endButton.hidden = closed;
    this.closedBar.hidden = !closed;
    this.closedBar.replaceChildren();
    if (closed) {
      this.closedBar.append(el("p", "", reason));
      if (canRestart) {
        const again = el("button", "sf-button sf-primary", "Start a new chat");
        again.type = "button";
        again.addEventListener("click", () => this.handlers.restart());
        this.closedBar.append(again);
      }
    }
  }

  setTyping(text: string | null): void {
    this.update(() => {
      this.typing.hidden = text === null;
      this.typingText.textContent = text ?? "";
    });
  }

  /** Run a DOM change, then keep the newest message in view if the reader was at the bottom. */
  update(change: () => void): void {
    const s = this.scroller;
    const atBottom = s.scrollHeight - s.scrollTop - s.clientHeight < 80;
    change();
    if (atBottom) s.scrollTop = s.scrollHeight;
  }

  append(node: HTMLElement): void {
    this.update(() => this.log.append(node));
  }

  notice(kind: string, text: string): HTMLLIElement {
    const item = el("li", `sf-notice sf-notice-${kind}`);
    item.append(el("span", "", text));
    this.append(item);
    return item;
  }

  /** A streaming bubble, outside the live log so a screen reader hears the final message once. */
  draft(): { item: HTMLElement; body: HTMLElement } {
    const item = el("div", "sf-msg sf-agent sf-draft");
    const body = el("div", "sf-bubble");
    item.append(body);
    this.update(() => this.drafts.append(item));
    return { item, body };
  }

  focusInput(): void {
    this.input.focus();
  }
}
