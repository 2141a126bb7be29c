"""Delivery channels: one module each, one small interface (``base.ChannelSender``)."""
