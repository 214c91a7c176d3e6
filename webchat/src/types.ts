/** The gateway's wire shapes the chat reads (gateway-contract v1). Agent messages are the Agent API's own
 * JSON: unknown types and fields are kept and shown as plainly as possible, never dropped. */

export interface TokenGrant {
  token: string;
  expires_in?: number;
  expires_at?: string;
  conversations: string[];
  user?: string;
}

export interface Citation {
  type?: string;
  value?: string;
  inlineMetadata?: { claim?: string; location?: string }[];
}

export interface ActionResult {
  type?: string;
  name?: string;
  value?: unknown;
}

export interface AgentMessage {
  type: string;
  id?: string;
  message?: string;
  feedbackId?: string;
  result?: ActionResult[];
  citedReferences?: Citation[];
  collect?: unknown;
  confirm?: unknown;
  targets?: { type?: string; value?: string }[];
  code?: string;
  errors?: unknown[];
  reason?: string;
  [field: string]: unknown;
}

/** What the user sends: a new turn, or an answer to an agent's Inquire/Confirm. */
export interface OutgoingMessage {
  id: string;
  text: string;
  type: "Text" | "Reply";
  in_reply_to?: string;
}

export type Delivery = "not_sent" | "maybe_delivered" | "answered";

export interface GatewayEvent {
  id: number;
  type: string;
  data: Record<string, unknown>;
}
