/** Builds the DOM of one agent message. Every string from the agent goes in as text (textContent) or
 * through renderMarkdown; nothing from the wire becomes an attribute except a checked http(s) link. */

import { renderMarkdown, safeUrl } from "./markdown";
import type { ActionResult, AgentMessage, Citation } from "./types";

export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  className = "",
  text?: string,
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

/** A visually hidden prefix that tells a screen reader who speaks. */
export function speaker(who: string): HTMLElement {
  return el("span", "sf-sr", `${who}: `);
}

export function markdownInto(target: HTMLElement, text: string): void {
  target.replaceChildren(renderMarkdown(text));
}

function valueText(value: unknown): string {
  if (value === null || value === undefined) return "";
  if (typeof value === "string") return value;
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  return JSON.stringify(value, null, 1);
}

function resultsBlock(results: ActionResult[]): HTMLElement {
  const box = el("div", "sf-results");
  for (const result of results) {
    const card = el("section", "sf-result");
    const name = result.name ?? result.type ?? "Result";
    card.append(el("h3", "sf-result-name", name));
    const value = result.value;
    if (value && typeof value === "object" && !Array.isArray(value)) {
      const list = el("dl");
      for (const [key, item] of Object.entries(value as Record<string, unknown>)) {
        list.append(el("dt", "", key), el("dd", "", valueText(item)));
      }
      card.append(list);
    } else {
      card.append(el("p", "sf-result-value", valueText(value)));
    }
    box.append(card);
  }
  return box;
}

function citationLabel(citation: Citation, url: URL | null): string {
  const claim = citation.inlineMetadata?.find((m) => m.claim)?.claim;
  if (claim) return claim;
  if (url) return url.hostname + (url.pathname === "/" ? "" : url.pathname);
  return citation.value ?? "Source";
}

function citationsBlock(citations: Citation[]): HTMLElement {
  const box = el("div", "sf-cites");
  box.append(el("p", "sf-cites-title", "Sources"));
  const list = el("ol");
  for (const citation of citations) {
    const item = el("li");
    const value = citation.value ?? "";
    let url: URL | null = null;
    try {
      url = safeUrl(value) ? new URL(value) : null;
    } catch {
      url = null;
    }
    if (url && (url.protocol === "https:" || url.protocol === "http:")) {
      const link = el("a", "", citationLabel(citation, url));
      link.href = url.href;
      link.target = "_blank";
      link.rel = "noopener noreferrer nofollow";
      item.append(link);
    } else {
      item.textContent = `${citation.type === "record" ? "Record " : ""}${citationLabel(citation, null)}`;
    }
    list.append(item);
  }
  box.append(list);
  return box;
}

/** Notice text for the message types that are events rather than speech. */
export function noticeFor(message: AgentMessage): { kind: string; text: string } | null {
  switch (message.type) {
    case "Escalate":
    case "Escalation":
      return { kind: "escalate", text: "You are being transferred to a person. Please stay in this chat." };
    case "SessionEnded":
      return { kind: "ended", text: "The assistant ended the conversation." };
    case "Error":
      return { kind: "error", text: `The assistant could not answer: ${message.message ?? "an error occurred"}.` };
    default:
      return null;
  }
}

export interface Bubble {
  item: HTMLLIElement;
  body: HTMLElement;
}

/** The bubble of one agent message (its text, action results, citations, failure details). */
export function agentBubble(message: AgentMessage): Bubble {
  const item = el("li", `sf-msg sf-agent sf-type-${message.type.toLowerCase().replace(/[^a-z]/g, "")}`);
  const body = el("div", "sf-bubble");
  item.append(body);
  body.append(speaker(message.type === "Failure" ? "Assistant (problem)" : "Assistant"));
  const text = el("div", "sf-text");
  if (message.message) markdownInto(text, message.message);
  body.append(text);
  if (message.type === "Failure" && Array.isArray(message.errors) && message.errors.length) {
    const list = el("ul", "sf-errors");
    for (const error of message.errors) list.append(el("li", "", valueText(error)));
    body.append(list);
  }
  if (Array.isArray(message.result) && message.result.length) body.append(resultsBlock(message.result));
  if (Array.isArray(message.citedReferences) && message.citedReferences.length) {
    body.append(citationsBlock(message.citedReferences));
  }
  if (!message.message && body.childElementCount <= 2) {
    // A type this chat does not know and no text: say what came, rather than drop it.
    text.textContent = `(${message.type})`;
  }
  return { item, body };
}
