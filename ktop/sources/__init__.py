"""Where snapshots come from: live collectors, or (later) a recording."""
