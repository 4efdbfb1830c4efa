-- A place narrowed to several subdivisions (a network serving Crimea and Sevastopol) is kept
-- with the check-in: the candidates, joined with "|" (NULL when there were none).
ALTER TABLE checkins ADD COLUMN subdivision_candidates TEXT;
