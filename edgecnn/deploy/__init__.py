"""Deployment to a device: the Jetson container's build context, and the on-device run."""
