"""The built-in demo agent: the service assistant of a small bike repair shop, needing no file.

It is written in the same format as a YAML agents file (so it doubles as that format's worked example
and its test) and exercises every kind of reply: greeting, Inform, remembered facts, Inquire, Confirm
answered by Reply, action results, Failure, citations, Escalate, the agent ending the session, a reply to
"hi"/"hello" listing what it can do, and an echo fallback (``You said: <text>``) that shows which turn a
reply belongs to.
"""

from __future__ import annotations

from typing import Any

from sessionforce.emulator._agent_schema import parse_agent
from sessionforce.emulator._scripted import ScriptedAgent

#: The demo agent's id: 18 characters, Salesforce-style (agent ids start with ``0Xx``).
DEMO_AGENT_ID = "0XxSF0000000DEMOAA"

DEMO_AGENT: dict[str, Any] = {
    "id": DEMO_AGENT_ID,
    "name": "Cog & Chain Bikes Assistant",
    "description": "Service agent of Cog & Chain Bikes, a small bike repair shop (built-in demo).",
    "greeting": "Hi, I'm the Cog & Chain Bikes assistant. I can tell you our opening hours, book a "
    "repair, check an order, or connect you with a person. How can I help?",
    "topics": [
        {"name": "recall_name", "regex": r"\bwhat(?:'s| is) my name\b|\bdo you (?:know|remember) my name\b",
         "steps": [{"inform": {"message": "Your name is {name}.",
                               "otherwise": "I don't know your name yet. You can tell me: \"my name is ...\"."}}]},
        {"name": "remember_name", "regex": r"\b(?:my name is|call me) (?P<name>[A-Za-z][\w'-]*)",
         "steps": [{"remember": {"name": "{name}"}}, {"inform": "Nice to meet you, {name}!"}]},
        {"name": "opening_hours", "keywords": ["hours", "opening", "open"],
         "reply": "We're open Tuesday to Saturday, 9:00 to 18:00, and closed on Sundays and Mondays."},
        {"name": "book_repair", "keywords": ["book", "repair", "appointment", "service my bike"],
         "steps": [
             {"inquire": {"message": "Sure. Which date would you like to bring your bike in?",
                          "collect": {"name": "date", "type": "Date"}}},
             {"confirm": {"message": "Shall I book a repair slot on {date}?",
                          "confirm": {"actionName": "BookRepair", "parameters": {"date": "{date}"}},
                          "decline": "Okay, I haven't booked anything."}},
             {"action": {"name": "BookRepair",
                         "result": {"bookingId": "RPR-{sequenceId}", "date": "{date}", "status": "Booked"},
                         "message": "Booked: your repair is on {date} (booking RPR-{sequenceId})."}},
         ]},
        {"name": "order_status",
         "regex": r"\b(?:order status|where is my order|track my order|order)\b(?:\D*?(?P<order>\d+))?",
         "steps": [
             {"inquire": {"message": "What is your order number?", "collect": {"name": "order", "type": "Text"}}},
             {"action": {"name": "GetOrderStatus",
                         "result": {"orderNumber": "{order}", "status": "Ready for pickup"},
                         "message": "Order {order} is ready for pickup."}},
         ]},
        {"name": "refund", "keywords": ["refund", "money back"],
         "steps": [{"fail": {"action": "IssueRefund", "code": "ACTION_FAILED",
                             "message": "I tried to start a refund, but it didn't work.",
                             "errors": ["IssueRefund: refunds need the original receipt number."]}}]},
        {"name": "warranty", "keywords": ["warranty", "guarantee"],
         "steps": [{"inform": {
             "message": "Every repair carries a 90-day warranty on parts and labour.",
             "citations": [{"type": "link", "value": "https://cogandchain.example/policies/warranty",
                            "inlineMetadata": [{"claim": "Every repair carries a 90-day warranty",
                                                "location": "Warranty policy, section 1"}]}]}}]},
        {"name": "human", "keywords": ["human", "person", "representative", "someone real"],
         "steps": [{"escalate": {"message": "I'll connect you with someone from the shop.",
                                 "targets": [{"type": "Queue", "value": "Workshop_Front_Desk"}]}}]},
        {"name": "goodbye", "keywords": ["goodbye", "bye"],
         "steps": [{"end": {"reason": "Action", "message": "Thanks for visiting Cog & Chain Bikes. Goodbye!"}}]},
        # Last, so "hi, my name is Ada" or "hello, are you open today?" reach their own topic first.
        {"name": "greeting",
         "regex": r"^\W*(?:hi|hello|hey|hiya|howdy|greetings|good (?:morning|afternoon|evening|day))\b",
         "reply": "Hello! I can tell you our opening hours, book a repair, check an order, explain our repair "
         "warranty, or connect you with a person. What would you like to do?"},
    ],
}


def demo_agent() -> ScriptedAgent:
    """A fresh instance of the built-in demo agent."""
    return parse_agent(DEMO_AGENT, "demo agent")
