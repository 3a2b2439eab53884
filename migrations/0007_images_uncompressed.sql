-- Stored images are PNG, JPEG or TIFF: already compressed. With the default EXTENDED storage,
-- PostgreSQL ran pglz over every ~30 KB image before giving up and storing it as it was; that
-- attempt was the largest single item in PostgreSQL's CPU profile of a worker batch (0.1-0.3 ms
-- per image, measured by inserting the same 300 sample images into an EXTENDED and an EXTERNAL
-- column). EXTERNAL keeps the bytes out of line, uncompressed, exactly as before, minus the
-- attempt. Applies to rows written from now on; rows already stored are untouched.
ALTER TABLE images ALTER COLUMN bytes SET STORAGE EXTERNAL;
