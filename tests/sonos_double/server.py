"""The HTTP side of a speaker on port 1400, and the TLS context of its websocket port.

``/xml/device_description.xml``, the SCPD files ``/xml/{Service}1.xml``, SOAP control on
``/.../Control`` with UPnP faults (401, 402, 701, 711, 714, 718), ``/status/batterystatus`` on
portable models and ``/double/status`` (not on real speakers: the state and every fetch as JSON).
"""

import datetime
import ipaddress
import logging
import re
import ssl
import tempfile
from typing import Any
from xml.etree import ElementTree as ET
from xml.sax.saxutils import escape

from aiohttp import web

from .const import NS_SOAP, NS_UPNP_CONTROL
from .didl import _soap_envelope, _text_elements, didl_title, format_hms
from .playback import SpeakerPlayback
from .records import UPnPError
from .services import ACTIONS, CONTROL_PATHS, scpd_xml

#: Named after the package, as when the double was one module.
_LOGGER = logging.getLogger(__package__)


def self_signed_context(common_name: str, ip: str) -> ssl.SSLContext:
    """A server TLS context with a fresh self-signed certificate for ``ip``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    # The double imports nothing of Home Assistant (it stands in for a speaker), so no dt_util.
    now = datetime.datetime.now(datetime.UTC)  # pylint: disable=home-assistant-enforce-utcnow
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.TemporaryDirectory() as folder:
        cert_path = f"{folder}/cert.pem"
        key_path = f"{folder}/key.pem"
        with open(cert_path, "wb") as out:
            out.write(cert.public_bytes(serialization.Encoding.PEM))
        with open(key_path, "wb") as out:
            out.write(
                key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
            )
        context.load_cert_chain(cert_path, key_path)
    return context


class HttpMixin(SpeakerPlayback):
    """The HTTP side on port 1400: description XML, SCPD, SOAP control, status pages."""

    # ---------------------------------------------------------------- HTTP: description

    def device_description(self) -> str:
        """``/xml/device_description.xml``."""

        def service(kind: str, path: str, scpd: str) -> str:
            return (
                f"<service><serviceType>urn:schemas-upnp-org:service:{kind}:1</serviceType>"
                f"<serviceId>urn:upnp-org:serviceId:{kind}</serviceId>"
                f"<controlURL>{path}/Control</controlURL><eventSubURL>{path}/Event</eventSubURL>"
                f"<SCPDURL>/xml/{scpd}1.xml</SCPDURL></service>"
            )

        root_services = "".join(
            service(kind, f"/{kind}", kind)
            for kind in ("AlarmClock", "DeviceProperties", "ZoneGroupTopology")
        )
        renderer = "".join(
            service(kind, f"/MediaRenderer/{kind}", kind)
            for kind in ("RenderingControl", "AVTransport", "GroupRenderingControl")
        )
        server = service("ContentDirectory", "/MediaServer/ContentDirectory", "ContentDirectory")
        room = escape(self.name)
        return (
            '<?xml version="1.0" encoding="utf-8"?>'
            '<root xmlns="urn:schemas-upnp-org:device-1-0">'
            "<specVersion><major>1</major><minor>0</minor></specVersion>"
            "<device>"
            "<deviceType>urn:schemas-upnp-org:device:ZonePlayer:1</deviceType>"
            f"<friendlyName>{escape(self.ip)} - {escape(self.model_name)}</friendlyName>"
            "<manufacturer>Sonos, Inc.</manufacturer>"
            "<manufacturerURL>http://www.sonos.com</manufacturerURL>"
            f"<modelNumber>{escape(self.model_number)}</modelNumber>"
            f"<modelDescription>Sonos {escape(self.model_name)}</modelDescription>"
            f"<modelName>{escape(self.model_name)}</modelName>"
            "<modelURL>http://www.sonos.com/products/zoneplayers</modelURL>"
            f"<softwareVersion>{escape(self.software_version)}</softwareVersion>"
            "<swGen>2</swGen>"
            f"<hardwareVersion>{escape(self.hardware_version)}</hardwareVersion>"
            f"<serialNum>{escape(self.serial_number)}</serialNum>"
            f"<MACAddress>{escape(self.mac)}</MACAddress>"
            f"<UDN>uuid:{self.uid}</UDN>"
            "<iconList><icon><id>0</id><mimetype>image/png</mimetype><width>48</width>"
            "<height>48</height><depth>24</depth><url>/img/icon-S18.png</url></icon></iconList>"
            f"<displayVersion>{escape(self.display_version)}</displayVersion>"
            "<extraVersion></extraVersion>"
            f"<roomName>{room}</roomName><displayName>{escape(self.model_name)}</displayName>"
            "<zoneType>1</zoneType><internalSpeakerSize>5</internalSpeakerSize>"
            f"<serviceList>{root_services}</serviceList>"
            "<deviceList>"
            "<device><deviceType>urn:schemas-upnp-org:device:MediaServer:1</deviceType>"
            f"<friendlyName>{escape(self.ip)} - {escape(self.model_name)} Media Server"
            "</friendlyName>"
            f"<UDN>uuid:{self.uid}_MS</UDN><serviceList>{server}</serviceList></device>"
            "<device><deviceType>urn:schemas-upnp-org:device:MediaRenderer:1</deviceType>"
            f"<friendlyName>{room} - {escape(self.model_name)} Media Renderer</friendlyName>"
            f"<UDN>uuid:{self.uid}_MR</UDN><serviceList>{renderer}</serviceList></device>"
            "</deviceList></device></root>"
        )

    async def _handle_description(self, _request: web.Request) -> web.StreamResponse:
        return self._xml_response(self.device_description())

    async def _handle_scpd(self, request: web.Request) -> web.StreamResponse:
        match = re.fullmatch(r"(\w+)1\.xml", request.match_info["file"])
        if match is None or match[1] not in ACTIONS:
            raise web.HTTPNotFound
        return self._xml_response(scpd_xml(match[1]))

    def _xml_response(self, body: str, status: int = 200) -> web.Response:
        return web.Response(
            status=status,
            body=body.encode(),
            headers={
                "Content-Type": 'text/xml; charset="utf-8"',
                "Server": f"Linux UPnP/1.0 Sonos/{self.software_version} ({self.model_number})",
            },
        )

    # ---------------------------------------------------------------- HTTP: SOAP

    async def _handle_control(self, request: web.Request) -> web.StreamResponse:
        path_service = CONTROL_PATHS[request.path.removesuffix("/Control")]
        header = request.headers.get("SOAPACTION", "").strip().strip('"')
        match = re.fullmatch(r"urn:schemas-upnp-org:service:(\w+):1#(\w+)", header)
        if match is None or match[1] != path_service:
            return self._fault(path_service, header or "?", UPnPError(401, "bad SOAPACTION"))
        action = match[2]
        try:
            envelope = ET.fromstring(await request.read())
        except ET.ParseError:
            return self._fault(path_service, action, UPnPError(402, "malformed SOAP body"))
        body = envelope.find(f"{{{NS_SOAP}}}Body")
        call = body[0] if body is not None and len(body) else None
        args = (
            {} if call is None else {child.tag.split("}")[-1]: child.text or "" for child in call}
        )
        self.soap_log.append((path_service, action, args))
        try:
            result = self.call(path_service, action, args)
        except UPnPError as err:
            return self._fault(path_service, action, err)
        except Exception as err:
            self.errors.append(err)
            _LOGGER.exception("%s: %s#%s failed", self.name, path_service, action)
            return self._fault(path_service, action, UPnPError(501, f"double failed: {err!r}"))
        inner = (
            f'<u:{action}Response xmlns:u="urn:schemas-upnp-org:service:{path_service}:1">'
            f"{_text_elements(result)}</u:{action}Response>"
        )
        return self._xml_response(_soap_envelope(inner))

    def _fault(self, service: str, action: str, err: UPnPError) -> web.Response:
        self.faults.append((service, action, err.code))
        inner = (
            "<s:Fault><faultcode>s:Client</faultcode><faultstring>UPnPError</faultstring>"
            f'<detail><UPnPError xmlns="{NS_UPNP_CONTROL}"><errorCode>{err.code}</errorCode>'
            f"<errorDescription>{escape(err.description)}</errorDescription>"
            "</UPnPError></detail></s:Fault>"
        )
        return self._xml_response(_soap_envelope(inner), status=500)

    def call(self, service: str, action: str, args: dict[str, str]) -> dict[str, str]:
        """Run one SOAP action against the speaker's state (UPnPError on failure)."""
        spec = ACTIONS.get(service, {}).get(action)
        handler = self._handlers.get((service, action))
        if spec is None or handler is None:
            raise UPnPError(401, f"{service} has no action {action}")
        missing = [name for name in spec[0] if name not in args]
        if missing:
            raise UPnPError(402, f"missing {', '.join(missing)}")
        if args.get("InstanceID", "0") != "0":
            raise UPnPError(718)
        try:
            result = handler(args)
        finally:
            self._household().changed()
        return {name: result.get(name, "") for name in spec[1]}

    # ---------------------------------------------------------------- status pages

    async def _handle_battery_status(self, _request: web.Request) -> web.StreamResponse:
        """``/status/batterystatus``: battery data on portable models, nothing on others."""
        body = "<ZPSupportInfo></ZPSupportInfo>"
        if self.has_battery:
            data = {
                "Health": "GREEN",
                "Level": str(self.battery_level),
                "Temperature": "NORMAL",
                "PowerSource": "SONOS_CHARGING_RING" if self.battery_charging else "BATTERY",
            }
            items = "".join(f'<Data name="{k}">{v}</Data>' for k, v in data.items())
            body = (
                f"<ZPSupportInfo><LocalBatteryStatus>{items}</LocalBatteryStatus></ZPSupportInfo>"
            )
        return self._xml_response(body)

    def status(self) -> dict[str, Any]:
        """The double's state and history as JSON-able data (``/double/status``)."""
        track = self._current_track()
        return {
            "name": self.name,
            "uid": self.uid,
            "ip": self.ip,
            "model": self.model_name,
            "transport_state": self.transport_state,
            "coordinator": self.coordinator.name,
            "current_uri": self.current_uri,
            "title": track.title if track else didl_title(self.current_meta),
            "track": self.track_number,
            "queue_length": len(self.queue),
            "position": format_hms(self.position()),
            "volume": self.volume,
            "mute": self.mute,
            "event_delay": self.event_delay,
            "start_delay": self.start_delay,
            "sleep_timer": self.sleep_timer_remaining(),
            "played": [record.summary() for record in self.played],
            "clips": [
                {"id": c.id, "url": c.url, "status": c.status, "volume": c.volume}
                for c in self.clips
            ],
            "errors": [repr(error) for error in self.errors],
        }

    async def _handle_double_status(self, _request: web.Request) -> web.StreamResponse:
        return web.json_response(self.status())
