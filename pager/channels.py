"""The three ways to reach a person: email (SMTP), SMS (an HTTP gateway) and webhook.

SMS gateway contract (a real provider's adapter is a few lines that take this request):
    POST <sms_gateway_url>
    Authorization: Bearer <ECM_PAGER_SMS_TOKEN>        (when set)
    Content-Type: application/json
    {"to": "+15550100", "text": "...", "incident_id": 12, "ack_url": "https://..."}
Any 2xx answer is delivered; anything else is a failed attempt, retried with backoff.

Webhook targets get: {"incident_id", "level", "subject", "text", "ack_url"} as JSON.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from urllib.parse import urlsplit

import requests

from pager.config import PagerSettings, Secrets

log = logging.getLogger(__name__)

MAX_ERROR_CHARS = 300


class SendError(Exception):
    """One delivery attempt failed; the message says why (never a secret)."""


@dataclass(frozen=True)
class Message:
    """One notification as stored in the outbox."""

    notification_id: int
    incident_id: int
    level: int
    channel: str
    target: str
    subject: str
    body: str
    ack_url: str


class Channels:
    """Sends a Message over its channel with the configured server, gateway and timeouts."""

    def __init__(self, settings: PagerSettings, secrets: Secrets) -> None:
        self.settings = settings
        self.secrets = secrets
        self.http = requests.Session()

    def send(self, message: Message) -> None:
        """Deliver or raise SendError."""
        try:
            if message.channel == "email":
                self._email(message)
            elif message.channel == "sms":
                self._sms(message)
            elif message.channel == "webhook":
                self._post(message.target, _webhook_body(message), None)
            else:
                raise SendError(f"unknown channel {message.channel!r}")
        except SendError:
            raise
        except (OSError, smtplib.SMTPException, requests.RequestException) as exc:
            raise SendError(_reason(exc)) from None

    def _email(self, message: Message) -> None:
        s = self.settings
        if not s.smtp_host:
            raise SendError("no smtp_host configured")
        mail = EmailMessage()
        mail["From"] = s.smtp_from
        mail["To"] = message.target
        mail["Subject"] = message.subject
        mail.set_content(message.body)
        with smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=s.send_timeout) as smtp:
            if s.smtp_starttls:
                smtp.starttls(context=ssl.create_default_context())
            if s.smtp_user:
                password = self.secrets.smtp_password
                smtp.login(s.smtp_user, password.get_secret_value() if password else "")
            smtp.send_message(mail)

    def _sms(self, message: Message) -> None:
        url = self.settings.sms_gateway_url
        if not url:
            raise SendError("no sms_gateway_url configured")
        text = f"{message.subject}\nAck: {message.ack_url}"
        body = {
            "to": message.target,
            "text": text,
            "incident_id": message.incident_id,
            "ack_url": message.ack_url,
        }
        token = self.secrets.sms_token
        self._post(url, body, token.get_secret_value() if token else None)

    def _post(self, url: str, body: dict[str, object], token: str | None) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = self.http.post(
            url, json=body, headers=headers, timeout=self.settings.send_timeout
        )
        if not 200 <= response.status_code < 300:
            raise SendError(f"HTTP {response.status_code} from the {_host(url)} endpoint")


def _webhook_body(message: Message) -> dict[str, object]:
    return {
        "incident_id": message.incident_id,
        "level": message.level,
        "subject": message.subject,
        "text": message.body,
        "ack_url": message.ack_url,
    }


def _host(url: str) -> str:
    return urlsplit(url).hostname or "?"


def _reason(exc: BaseException) -> str:
    # A requests error repeats the URL, which may carry a credential: name the kind only.
    if isinstance(exc, requests.RequestException):
        return f"{type(exc).__name__} talking to the endpoint"
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:MAX_ERROR_CHARS]
