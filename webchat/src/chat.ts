/** One conversation on screen: applies the gateway's events (each once, by event id) to the view, and
 * hands what the user writes to the outbox. The events stream is the single source of what is shown;
 * a POST's answer only says "delivered" and, if the stream fell behind, makes it re-attach. */

import { ApiError, GatewayApi } from "./api";
import { Outbox, type SendState } from "./outbox";
import { agentBubble, el, markdownInto, noticeFor, speaker } from "./render";
import { EventStream, type LinkStatus } from "./stream";
import { TokenKeeper, type TokenSource } from "./tokens";
import type { AgentMessage, GatewayEvent, OutgoingMessage, TokenGrant } from "./types";
import { newId } from "./util";
import { ChatView, icon } from "./view";

const THUMB_UP = "M2 21h4V9H2zm20-11a2 2 0 0 0-2-2h-6.3l1-4.6v-.3a1.5 1.5 0 0 0-.5-1L13.2 1 6.6 7.6A2 2 0 0 0 6 9v10a2 2 0 0 0 2 2h9a2 2 0 0 0 1.8-1.2l3-7.1.2-.7z";
const THUMB_DOWN = "M22 3h-4v12h4zM2 14a2 2 0 0 0 2 2h6.3l-1 4.6v.3a1.5 1.5 0 0 0 .5 1l1.1 1.1 6.6-6.6A2 2 0 0 0 18 15V5a2 2 0 0 0-2-2H7a2 2 0 0 0-1.8 1.2l-3 7.1L2 12z";

export interface ChatOptions {
  container: HTMLElement;
  /** The gateway's base URL, ending in "/". */
  base: string;
  grant: TokenGrant;
  title: string;
  closable: boolean;
  /** Where a new token comes from once the current one can no longer be refreshed. */
  tokenSource: TokenSource | null;
  /** Starts a new conversation (null: this chat cannot). */
  restart: (() => void) | null;
  close?: () => void;
  saveGrant?: (grant: TokenGrant) => void;
  /** The conversation was just made (not a page reload of an existing one). */
  fresh?: boolean;
}

interface UserEntry {
  message: OutgoingMessage;
  item: HTMLLIElement;
  meta: HTMLElement;
  seen: boolean;
}

const PLACEHOLDERS: Record<string, string> = {
  input: "Write your answer…",
  confirmation: "Your answer…",
  message: "Write a message…",
};

export class Chat {
  readonly view: ChatView;
  private readonly tokens: TokenKeeper;
  private readonly api: GatewayApi;
  private readonly stream: EventStream;
  private readonly outbox: Outbox;
  private readonly seen = new Set<number>();
  private readonly users = new Map<string, UserEntry>();
  private readonly agents = new Map<string, HTMLElement>();
  private readonly drafts = new Map<string, { item: HTMLElement; body: HTMLElement; text: string }>();
  private asking: AgentMessage | null = null;
  private choices: HTMLButtonElement[] = [];
  private awaiting = "message";
  private ended = false;
  private readonly listeners: [EventTarget, string, () => void][] = [];

  constructor(private readonly options: ChatOptions) {
    this.tokens = new TokenKeeper(options.grant, () => this.api.refresh(), options.tokenSource, (grant) =>
      options.saveGrant?.(grant),
    );
    this.api = new GatewayApi(options.base, this.tokens.conversation, () => this.tokens.token);
    this.view = new ChatView(
      options.container,
      { title: options.title, closable: options.closable, canRestart: options.restart !== null },
      {
        submit: (text) => this.submit(text),
        restart: () => options.restart?.(),
        end: () => void this.endConversation(),
        close: () => options.close?.(),
      },
    );
    this.view.root.dataset.conversation = this.api.conversation;
    const reauthorize = (): Promise<boolean> => this.tokens.renew();
    this.outbox = new Outbox(this.api, { state: (m, s, e) => this.sendState(m, s, e), reauthorize });
    this.stream = new EventStream(this.api, {
      event: (event) => this.apply(event),
      notice: (type) => {
        if (type === "history.truncated") this.view.notice("quiet", "Some earlier messages are no longer available.");
      },
      status: (status, error) => this.linkStatus(status, error),
      reauthorize,
    });
    for (const message of this.outbox.pending()) this.addUser(message);
    this.listen(window, "online", () => {
      this.tokens.checkDue();
      this.stream.reattach();
      this.outbox.wake();
    });
    this.listen(window, "offline", () => this.stream.pause());
    this.listen(document, "visibilitychange", () => this.tokens.checkDue());
    this.stream.start();
    this.outbox.pump();
    // A new conversation: start its session now, so the greeting shows before the user writes.
    if (options.fresh) this.api.start().catch(() => undefined);
  }

  destroy(): void {
    this.stream.stop();
    this.outbox.stop();
    this.tokens.stop();
    for (const [target, type, handler] of this.listeners) target.removeEventListener(type, handler);
  }

  private listen(target: EventTarget, type: string, handler: () => void): void {
    target.addEventListener(type, handler);
    this.listeners.push([target, type, handler]);
  }

  // ---- what the user does ------------------------------------------------------------------

  submit(text: string, replyTo: AgentMessage | null = null): void {
    const asking = replyTo ?? (this.awaiting === "input" || this.awaiting === "confirmation" ? this.asking : null);
    const message: OutgoingMessage = asking?.id
      ? { id: newId(), text, type: "Reply", in_reply_to: asking.id }
      : { id: newId(), text, type: "Text" };
    this.settleChoices(text);
    this.awaiting = "message";
    this.view.setPlaceholder(PLACEHOLDERS.message);
    this.addUser(message);
    this.outbox.add(message);
  }

  private async endConversation(): Promise<void> {
    try {
      await this.api.end();
      this.markEnded("You ended the conversation.");
    } catch (err) {
      const why = err instanceof ApiError ? err.message : "unknown error";
      this.view.notice("error", `The conversation could not be ended: ${why}`);
    }
  }

  private addUser(message: OutgoingMessage): UserEntry {
    const known = this.users.get(message.id);
    if (known) return known;
    const item = el("li", "sf-msg sf-user");
    item.dataset.messageId = message.id;
    const bubble = el("div", "sf-bubble");
    bubble.append(speaker("You"), el("span", "sf-text", message.text));
    const meta = el("div", "sf-meta");
    item.append(bubble, meta);
    const entry: UserEntry = { message, item, meta, seen: false };
    this.users.set(message.id, entry);
    this.view.append(item);
    return entry;
  }

  private sendState(message: OutgoingMessage, state: SendState, error?: ApiError): void {
    const entry = this.users.get(message.id) ?? this.addUser(message);
    entry.item.dataset.state = state;
    if (state === "sent") {
      if (!entry.seen) entry.meta.textContent = "";
      // The turn is answered; if the stream has not shown it yet, it fell behind: re-attach.
      setTimeout(() => {
        if (!entry.seen) this.stream.reattach();
      }, 1500);
      return;
    }
    if (state === "failed") {
      this.failed(entry, error?.message ?? "unknown error", error?.delivery ?? "not_sent");
      return;
    }
    if (entry.seen) return;
    entry.meta.textContent =
      state === "waiting" ? (navigator.onLine ? "Not sent yet, retrying…" : "Waiting for the network…") : "Sending…";
  }

  private failed(entry: UserEntry, reason: string, delivery: string): void {
    entry.item.dataset.state = "failed";
    const text =
      delivery === "maybe_delivered"
        ? `The assistant may not have received this: ${reason}`
        : delivery === "answered"
          ? `Answered, but the reply could not be shown: ${reason}`
          : `Not sent: ${reason}`;
    entry.meta.replaceChildren(el("span", "", text));
    if (delivery !== "answered" && !this.ended) {
      const again = el("button", "sf-link-button", "Send again");
      again.type = "button";
      again.addEventListener("click", () => {
        again.disabled = true;
        this.submit(entry.message.text);
      });
      entry.meta.append(" ", again);
    }
  }

  private settleChoices(answer: string): void {
    for (const button of this.choices) {
      button.disabled = true;
      if (button.textContent === answer) button.setAttribute("aria-pressed", "true");
    }
    this.choices = [];
    this.asking = null;
  }

  // ---- what the gateway says ---------------------------------------------------------------

  private linkStatus(status: LinkStatus, error?: ApiError): void {
    this.view.setStatus(status);
    if (status !== "closed" || !error || this.ended) return;
    if (error.status === 401) {
      this.markEnded("This chat's access has expired. Start a new chat, or reload the page.", "expired");
    } else {
      this.markEnded(`This conversation is not available: ${error.message}`, "unavailable");
    }
  }

  /** Applies one event, once. Afterwards the chat's root fires `sessionforce:event` (detail: id, type,
   * data) so a host page can follow the conversation (analytics, tests) without reaching inside. */
  apply(event: GatewayEvent): void {
    if (this.seen.has(event.id)) return;
    this.seen.add(event.id);
    this.dispatch(event);
    this.view.root.dispatchEvent(new CustomEvent("sessionforce:event", { detail: event, bubbles: true }));
  }

  private dispatch(event: GatewayEvent): void {
    const data = event.data;
    switch (event.type) {
      case "user.message":
        return this.userMessage(data);
      case "session.started":
        return this.sessionStarted(data);
      case "agent.progress":
        return this.view.setTyping(typeof data.message === "string" ? data.message : "");
      case "agent.text_chunk":
        return this.chunk(data);
      case "agent.validation_failure":
        return this.clearDrafts();
      case "agent.message":
        if (data.message && typeof data.message === "object") this.agentMessage(data.message as AgentMessage);
        return;
      case "turn.end":
        return this.turnEnd(data);
      case "turn.error":
        return this.turnError(data);
      case "session.ended":
        return this.sessionEnded(data);
      default:
        return;
    }
  }

  private userMessage(data: Record<string, unknown>): void {
    const id = String(data.message_id ?? `event-${this.seen.size}`);
    const known = this.users.get(id);
    const entry =
      known ??
      this.addUser({ id, text: String(data.text ?? ""), type: data.type === "Reply" ? "Reply" : "Text" });
    entry.seen = true;
    entry.meta.textContent = "";
    if (entry.item !== this.view.log.lastElementChild) this.view.append(entry.item); // keep turn order
    if (data.type === "Reply") this.settleChoices(String(data.text ?? ""));
    this.view.setTyping("");
  }

  private sessionStarted(data: Record<string, unknown>): void {
    this.ended = false;
    if (data.resumed) {
      const reason = data.reason === "expired" ? "expired" : data.reason === "idle" ? "timed out" : "ended";
      this.view.notice("quiet", `Reconnected: the earlier session ${reason}, so the assistant may not recall it.`);
      return;
    }
    const greeting = Array.isArray(data.greeting) ? (data.greeting as AgentMessage[]) : [];
    for (const message of greeting) this.agentMessage(message);
  }

  private chunk(data: Record<string, unknown>): void {
    const id = String(data.message_id ?? "");
    const piece = String(data.text ?? "");
    let draft = this.drafts.get(id);
    if (!draft) {
      draft = { ...this.view.draft(), text: "" };
      this.drafts.set(id, draft);
    }
    const offset = typeof data.offset === "number" && data.offset <= draft.text.length ? data.offset : draft.text.length;
    draft.text = draft.text.slice(0, offset) + piece;
    const d = draft;
    this.view.update(() => markdownInto(d.body, d.text));
  }

  private clearDrafts(): void {
    this.view.update(() => {
      for (const draft of this.drafts.values()) draft.item.remove();
    });
    this.drafts.clear();
  }

  private agentMessage(message: AgentMessage): void {
    if (message.id) {
      const draft = this.drafts.get(message.id);
      if (draft) {
        draft.item.remove();
        this.drafts.delete(message.id);
      }
    }
    const notice = noticeFor(message);
    if (message.type === "SessionEnded") {
      this.markEnded(notice?.text ?? "The conversation ended.");
      return;
    }
    if (message.message || !notice) this.showAgent(message);
    if (notice) this.view.notice(notice.kind, notice.text);
  }

  private showAgent(message: AgentMessage): void {
    if (message.id && this.agents.has(message.id)) return; // the same message again: shown once
    const { item, body } = agentBubble(message);
    if (message.id) {
      item.dataset.messageId = message.id;
      this.agents.set(message.id, item);
    }
    if (message.type === "Confirm" || message.type === "Inquire") this.ask(message, body);
    if (message.feedbackId) item.append(this.feedback(message.feedbackId));
    this.view.append(item);
  }

  private ask(message: AgentMessage, body: HTMLElement): void {
    this.settleChoices("");
    this.asking = message;
    if (message.type !== "Confirm") return;
    const row = el("div", "sf-choices");
    row.setAttribute("role", "group");
    row.setAttribute("aria-label", "Answer");
    for (const answer of ["Yes", "No"]) {
      const button = el("button", `sf-button ${answer === "Yes" ? "sf-primary" : ""}`, answer);
      button.type = "button";
      button.addEventListener("click", () => {
        if (!button.disabled) this.submit(answer, message);
      });
      row.append(button);
      this.choices.push(button);
    }
    body.append(row);
  }

  private feedback(feedbackId: string): HTMLElement {
    const row = el("div", "sf-tools");
    const buttons: HTMLButtonElement[] = [];
    for (const [value, label, path] of [["GOOD", "Helpful", THUMB_UP], ["BAD", "Not helpful", THUMB_DOWN]] as const) {
      const button = el("button", "sf-feedback");
      button.append(icon(path));
      button.type = "button";
      button.setAttribute("aria-label", label);
      button.setAttribute("aria-pressed", "false");
      button.addEventListener("click", () => {
        for (const b of buttons) b.disabled = true;
        button.setAttribute("aria-pressed", "true");
        this.api.feedback(feedbackId, value).catch(() => {
          for (const b of buttons) b.disabled = false;
          button.setAttribute("aria-pressed", "false");
        });
      });
      buttons.push(button);
      row.append(button);
    }
    return row;
  }

  private turnEnd(data: Record<string, unknown>): void {
    this.clearDrafts();
    this.view.setTyping(null);
    const entry = this.users.get(String(data.message_id ?? ""));
    if (entry) {
      entry.meta.textContent = "";
      entry.item.dataset.state = "sent";
    }
    this.awaiting = typeof data.awaiting === "string" ? data.awaiting : "message";
    this.view.setPlaceholder(PLACEHOLDERS[this.awaiting] ?? PLACEHOLDERS.message);
    if (this.awaiting === "ended") this.markEnded("The assistant ended the conversation.");
  }

  private turnError(data: Record<string, unknown>): void {
    this.clearDrafts();
    this.view.setTyping(null);
    const error = (data.error ?? {}) as { message?: string; delivery?: string };
    const id = String(data.message_id ?? "");
    // Not sent, and this tab still holds the message: the outbox sends it again (same id) by itself.
    if (this.outbox.has(id)) return;
    const entry = this.users.get(id);
    if (entry) this.failed(entry, error.message ?? "the turn failed", error.delivery ?? "maybe_delivered");
    else this.view.notice("error", error.message ?? "A message could not be answered.");
  }

  private sessionEnded(data: Record<string, unknown>): void {
    const by = data.by;
    const text =
      by === "user"
        ? "You ended the conversation."
        : by === "gateway"
          ? "The conversation was closed after a long pause."
          : "The assistant ended the conversation.";
    this.markEnded(text);
  }

  private markEnded(text: string, kind = "ended"): void {
    this.clearDrafts();
    this.view.setTyping(null);
    if (!this.ended) this.view.notice(kind, text);
    this.ended = true;
    this.settleChoices("");
    this.view.setClosed(text, this.options.restart !== null);
  }
}
