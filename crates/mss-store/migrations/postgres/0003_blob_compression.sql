-- Raw messages and document contents are mostly base64 (MIME parts, PDF bodies inside a
-- CDA), which no LZ compressor can shrink. PostgreSQL's default, pglz, still compresses
-- a whole value once its first kilobyte (headers, XML) looked compressible: a profile of
-- the engine benchmark showed it taking half of the server's CPU. lz4 gives up on
-- incompressible input quickly and still shrinks text; a server built without lz4 (or
-- older than PostgreSQL 14) stores these columns uncompressed instead.
DO $$
BEGIN
    ALTER TABLE messages ALTER COLUMN raw SET COMPRESSION lz4;
    ALTER TABLE attachments ALTER COLUMN content SET COMPRESSION lz4;
    ALTER TABLE document_versions ALTER COLUMN content SET COMPRESSION lz4;
    ALTER TABLE outbox ALTER COLUMN raw SET COMPRESSION lz4;
EXCEPTION WHEN OTHERS THEN
    ALTER TABLE messages ALTER COLUMN raw SET STORAGE EXTERNAL;
    ALTER TABLE attachments ALTER COLUMN content SET STORAGE EXTERNAL;
    ALTER TABLE document_versions ALTER COLUMN content SET STORAGE EXTERNAL;
    ALTER TABLE outbox ALTER COLUMN raw SET STORAGE EXTERNAL;
END
$$;
