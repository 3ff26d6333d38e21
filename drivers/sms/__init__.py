"""短信网关: text messages to citizens' phones through the SMS gateway of the hall's choice."""

from drivers.sms.gateway import (
    GATEWAYS, GatewayError, HttpGateway, SmsGateway, TextMessage, gateway_from, register_gateway,
    sms_text,
)

__all__ = ["GATEWAYS", "GatewayError", "HttpGateway", "SmsGateway", "TextMessage", "gateway_from",
           "register_gateway", "sms_text"]
