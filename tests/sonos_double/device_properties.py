"""DeviceProperties: zone name and info, LED, button lock."""

from .playback import SpeakerPlayback
from .records import UPnPError


class DevicePropertiesMixin(SpeakerPlayback):
    """DeviceProperties actions."""

    def _set_zone_attributes(self, args: dict[str, str]) -> dict[str, str]:
        if args["DesiredZoneName"]:
            self.name = args["DesiredZoneName"]
        return {}

    def _zone_info(self, _args: dict[str, str]) -> dict[str, str]:
        return {
            "SerialNumber": self.serial_number,
            "SoftwareVersion": self.software_version,
            "DisplaySoftwareVersion": self.display_version,
            "HardwareVersion": self.hardware_version,
            "IPAddress": self.ip,
            "MACAddress": self.mac,
            "CopyrightInfo": "© 2004-2026 Sonos, Inc. All Rights Reserved.",
            "HTAudioIn": "0",
            "Flags": "0",
        }

    def _set_button_lock(self, args: dict[str, str]) -> dict[str, str]:
        if args["DesiredButtonLockState"] not in ("On", "Off"):
            raise UPnPError(402, "DesiredButtonLockState must be On or Off")
        self.buttons_locked = args["DesiredButtonLockState"] == "On"
        return {}

    def _set_led(self, args: dict[str, str]) -> dict[str, str]:
        if args["DesiredLEDState"] not in ("On", "Off"):
            raise UPnPError(402, "DesiredLEDState must be On or Off")
        self.led_on = args["DesiredLEDState"] == "On"
        return {}
