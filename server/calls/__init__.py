"""The transport-neutral call core: ``CallSession`` (audio frames and control events in, audio frames and
events out), turn taking, the live event feed, the registry of live calls and the call record model."""
