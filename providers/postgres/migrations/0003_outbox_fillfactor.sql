-- Leave 30% of each page free, so that claims, lease extensions and
-- releases, which change no indexed column, are HOT updates that add no
-- index entry. New pages follow the setting at once; existing pages as
-- they are rewritten (VACUUM FULL or pg_repack rewrite them all). The lock
-- it takes (SHARE UPDATE EXCLUSIVE) does not block reads or writes.
ALTER TABLE {{.Table}} SET (fillfactor = 70);
