"""Download: every image URL of the catalogue -> validated, resized images and a download manifest."""
