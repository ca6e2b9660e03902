/* cmd_images.c: placeholder, being written. */
