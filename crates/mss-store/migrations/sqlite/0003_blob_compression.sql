-- PostgreSQL's version of this migration chooses how message and document bytes are
-- compressed. SQLite never compresses them: nothing to do, the number keeps both
-- schemas at the same version.
SELECT 1;
