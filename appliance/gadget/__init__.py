"""USB gadget set-up: a boot keyboard through Linux configfs (libcomposite + usb_f_hid)."""
