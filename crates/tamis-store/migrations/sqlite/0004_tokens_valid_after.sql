-- Session tokens issued before this instant (ms) are refused: a password
-- change ends the sessions that the old password opened.
ALTER TABLE users ADD COLUMN tokens_valid_after BIGINT NOT NULL DEFAULT 0;
