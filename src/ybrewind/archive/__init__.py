"""The change-log archive repository: where archived segments live and how they are stored."""
