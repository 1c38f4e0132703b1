"""The UPnP services: actions (in args, out args), control and event URLs, SCPD."""

from typing import Final

_I = ("InstanceID",)


_IC = ("InstanceID", "Channel")


_QUEUE_ADD_OUT = ("FirstTrackNumberEnqueued", "NumTracksAdded", "NewQueueLength", "NewUpdateID")


_ALARM_ARGS = (
    "StartLocalTime",
    "Duration",
    "Recurrence",
    "Enabled",
    "RoomUUID",
    "ProgramURI",
    "ProgramMetaData",
    "PlayMode",
    "Volume",
    "IncludeLinkedZones",
)


ACTIONS: Final[dict[str, dict[str, tuple[tuple[str, ...], tuple[str, ...]]]]] = {
    "AVTransport": {
        "SetAVTransportURI": ((*_I, "CurrentURI", "CurrentURIMetaData"), ()),
        "SetNextAVTransportURI": ((*_I, "NextURI", "NextURIMetaData"), ()),
        "AddURIToQueue": (
            (
                *_I,
                "EnqueuedURI",
                "EnqueuedURIMetaData",
                "DesiredFirstTrackNumberEnqueued",
                "EnqueueAsNext",
            ),
            _QUEUE_ADD_OUT,
        ),
        "AddMultipleURIsToQueue": (
            (
                *_I,
                "UpdateID",
                "NumberOfURIs",
                "EnqueuedURIs",
                "EnqueuedURIsMetaData",
                "ContainerURI",
                "ContainerMetaData",
                "DesiredFirstTrackNumberEnqueued",
                "EnqueueAsNext",
            ),
            _QUEUE_ADD_OUT,
        ),
        "RemoveTrackFromQueue": ((*_I, "ObjectID", "UpdateID"), ()),
        "RemoveAllTracksFromQueue": (_I, ()),
        "GetMediaInfo": (
            _I,
            (
                "NrTracks",
                "MediaDuration",
                "CurrentURI",
                "CurrentURIMetaData",
                "NextURI",
                "NextURIMetaData",
                "PlayMedium",
                "RecordMedium",
                "WriteStatus",
            ),
        ),
        "GetTransportInfo": (
            _I,
            ("CurrentTransportState", "CurrentTransportStatus", "CurrentSpeed"),
        ),
        "GetPositionInfo": (
            _I,
            (
                "Track",
                "TrackDuration",
                "TrackMetaData",
                "TrackURI",
                "RelTime",
                "AbsTime",
                "RelCount",
                "AbsCount",
            ),
        ),
        "GetTransportSettings": (_I, ("PlayMode", "RecQualityMode")),
        "SetPlayMode": ((*_I, "NewPlayMode"), ()),
        "GetCrossfadeMode": (_I, ("CrossfadeMode",)),
        "SetCrossfadeMode": ((*_I, "CrossfadeMode"), ()),
        "GetCurrentTransportActions": (_I, ("Actions",)),
        "GetRemainingSleepTimerDuration": (
            _I,
            ("RemainingSleepTimerDuration", "CurrentSleepTimerGeneration"),
        ),
        "ConfigureSleepTimer": ((*_I, "NewSleepTimerDuration"), ()),
        "GetRunningAlarmProperties": (_I, ("AlarmID", "GroupID", "LoggedStartTime")),
        "Play": ((*_I, "Speed"), ()),
        "Pause": (_I, ()),
        "Stop": (_I, ()),
        "Seek": ((*_I, "Unit", "Target"), ()),
        "Next": (_I, ()),
        "Previous": (_I, ()),
        "BecomeCoordinatorOfStandaloneGroup": (
            _I,
            ("DelegatedGroupCoordinatorID", "NewGroupID"),
        ),
    },
    "RenderingControl": {
        "GetVolume": (_IC, ("CurrentVolume",)),
        "SetVolume": ((*_IC, "DesiredVolume"), ()),
        "SetRelativeVolume": ((*_IC, "Adjustment"), ("NewVolume",)),
        "GetMute": (_IC, ("CurrentMute",)),
        "SetMute": ((*_IC, "DesiredMute"), ()),
        "GetBass": (_I, ("CurrentBass",)),
        "SetBass": ((*_I, "DesiredBass"), ()),
        "GetTreble": (_I, ("CurrentTreble",)),
        "SetTreble": ((*_I, "DesiredTreble"), ()),
        "GetLoudness": (_IC, ("CurrentLoudness",)),
        "SetLoudness": ((*_IC, "DesiredLoudness"), ()),
        "GetOutputFixed": (_I, ("CurrentFixed",)),
        "SetOutputFixed": ((*_I, "DesiredFixed"), ()),
        "GetSupportsOutputFixed": (_I, ("CurrentSupportsFixed",)),
        "RampToVolume": (
            (*_IC, "RampType", "DesiredVolume", "ResetVolumeAfter", "ProgramURI"),
            ("RampTime",),
        ),
        "GetEQ": ((*_I, "EQType"), ("CurrentValue",)),
        "SetEQ": ((*_I, "EQType", "DesiredValue"), ()),
    },
    "GroupRenderingControl": {
        "GetGroupVolume": (_I, ("CurrentVolume",)),
        "SetGroupVolume": ((*_I, "DesiredVolume"), ()),
        "SetRelativeGroupVolume": ((*_I, "Adjustment"), ("NewVolume",)),
        "GetGroupMute": (_I, ("CurrentMute",)),
        "SetGroupMute": ((*_I, "DesiredMute"), ()),
        "SnapshotGroupVolume": (_I, ()),
    },
    "ContentDirectory": {
        "Browse": (
            (
                "ObjectID",
                "BrowseFlag",
                "Filter",
                "StartingIndex",
                "RequestedCount",
                "SortCriteria",
            ),
            ("Result", "NumberReturned", "TotalMatches", "UpdateID"),
        ),
    },
    "ZoneGroupTopology": {
        "GetZoneGroupState": ((), ("ZoneGroupState",)),
        "GetZoneGroupAttributes": (
            (),
            (
                "CurrentZoneGroupName",
                "CurrentZoneGroupID",
                "CurrentZonePlayerUUIDsInGroup",
                "CurrentMuseHouseholdId",
            ),
        ),
    },
    "DeviceProperties": {
        "GetHouseholdID": ((), ("CurrentHouseholdID",)),
        "GetZoneAttributes": (
            (),
            ("CurrentZoneName", "CurrentIcon", "CurrentConfiguration", "CurrentTargetRoomName"),
        ),
        "SetZoneAttributes": (("DesiredZoneName", "DesiredIcon", "DesiredConfiguration"), ()),
        "GetZoneInfo": (
            (),
            (
                "SerialNumber",
                "SoftwareVersion",
                "DisplaySoftwareVersion",
                "HardwareVersion",
                "IPAddress",
                "MACAddress",
                "CopyrightInfo",
                "ExtraInfo",
                "HTAudioIn",
                "Flags",
            ),
        ),
        "GetLEDState": ((), ("CurrentLEDState",)),
        "SetLEDState": (("DesiredLEDState",), ()),
        "GetButtonLockState": ((), ("CurrentButtonLockState",)),
        "SetButtonLockState": (("DesiredButtonLockState",), ()),
    },
    "AlarmClock": {
        "ListAlarms": ((), ("CurrentAlarmList", "CurrentAlarmListVersion")),
        "CreateAlarm": (_ALARM_ARGS, ("AssignedID",)),
        "UpdateAlarm": (("ID", *_ALARM_ARGS), ()),
        "DestroyAlarm": (("ID",), ()),
    },
}


CONTROL_PATHS: Final = {
    "/MediaRenderer/AVTransport": "AVTransport",
    "/MediaRenderer/RenderingControl": "RenderingControl",
    "/MediaRenderer/GroupRenderingControl": "GroupRenderingControl",
    "/MediaServer/ContentDirectory": "ContentDirectory",
    "/ZoneGroupTopology": "ZoneGroupTopology",
    "/DeviceProperties": "DeviceProperties",
    "/AlarmClock": "AlarmClock",
}


#: Evented state variables per service (besides LastChange).
EVENTED: Final = {
    "AVTransport": ("LastChange",),
    "RenderingControl": ("LastChange",),
    "GroupRenderingControl": ("GroupVolume", "GroupMute", "GroupVolumeChangeable"),
    "ZoneGroupTopology": ("ZoneGroupState", "ZonePlayerUUIDsInGroup"),
    "DeviceProperties": ("ZoneName", "Icon", "Invisible"),
    "ContentDirectory": (
        "SystemUpdateID",
        "ContainerUpdateIDs",
        "FavoritesUpdateID",
        "FavoritePresetsUpdateID",
        "SavedQueuesUpdateID",
        "ShareListUpdateID",
        "ShareIndexInProgress",
    ),
    "AlarmClock": ("AlarmListVersion",),
}


def scpd_xml(service: str) -> str:
    """A service description soco can read arguments from (``compose_args``)."""
    actions = ACTIONS[service]
    variables: dict[str, bool] = dict.fromkeys(EVENTED.get(service, ()), True)
    parts = []
    for action, (in_args, out_args) in actions.items():
        args = []
        for direction, names in (("in", in_args), ("out", out_args)):
            for name in names:
                variables.setdefault(f"A_ARG_TYPE_{name}", False)
                args.append(
                    f"<argument><name>{name}</name><direction>{direction}</direction>"
                    f"<relatedStateVariable>A_ARG_TYPE_{name}</relatedStateVariable></argument>"
                )
        parts.append(
            f"<action><name>{action}</name><argumentList>{''.join(args)}</argumentList></action>"
        )
    state = "".join(
        f'<stateVariable sendEvents="{"yes" if evented else "no"}"><name>{name}</name>'
        "<dataType>string</dataType></stateVariable>"
        for name, evented in variables.items()
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<scpd xmlns="urn:schemas-upnp-org:service-1-0">'
        "<specVersion><major>1</major><minor>0</minor></specVersion>"
        f"<actionList>{''.join(parts)}</actionList>"
        f"<serviceStateTable>{state}</serviceStateTable></scpd>"
    )
