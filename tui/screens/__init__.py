"""The app's screens, one per module; each is constructed as `Screen(source)`."""
