"""content's media: images, audio, video and files that lessons reference by id, stored in GridFS
(embedded: files on disk) with their type sniffed from the bytes and their SHA-256."""
