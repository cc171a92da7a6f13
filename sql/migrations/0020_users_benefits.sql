-- Who is eligible for the city's monthly free trips, and the customer-service desk: a user's
-- birth date, Sisbén IV group and certified disability; the allocation table as data with
-- validity periods; accent-insensitive name search; the hotlist's indexes.

-- A user's eligibility. Sisbén IV classifies households in groups A (extreme poverty), B
-- (moderate poverty), C1-C18 (vulnerable) and D (neither); NULL is "no Sisbén". A birth date
-- is optional (unknown for many registrations); disability means a certified one.
ALTER TABLE users
    ADD COLUMN birth_date date CHECK (birth_date >= '1900-01-01'),
    ADD COLUMN sisben_group text CHECK (sisben_group ~ '^(A|B|C([1-9]|1[0-8])|D)$'),
    ADD COLUMN disability boolean NOT NULL DEFAULT false;

-- An email as browsers accept it in an <input type="email"> (the WHATWG HTML standard's
-- "valid e-mail address"), at most 254 characters. Rows written before this migration are
-- not re-checked (NOT VALID); every new or changed row is.
CREATE FUNCTION email_is_valid(p_email text) RETURNS boolean
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT length(p_email) <= 254 AND p_email ~ ('^[A-Za-z0-9.!#$%&''*+/=?^_`{|}~-]+@'
        '[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$')
$$;
ALTER TABLE users ADD CONSTRAINT users_email_check CHECK (public.email_is_valid(email)) NOT VALID;

-- The allocation table: trips a month per criterion and Sisbén group (NULL: no Sisbén), valid
-- from the first day of a month until valid_to (exclusive; NULL: open). A person meeting
-- several criteria gets the largest number; trips are monthly and do not accumulate; only a
-- personalised card can hold them. min_age is the age (in whole years on the first day of the
-- month) that the older-adult criterion needs.
CREATE TABLE benefit_rules (
    criterion    text NOT NULL CHECK (criterion IN ('disability', 'older_adult', 'poverty')),
    sisben_group text CHECK (sisben_group ~ '^(A|B|C([1-9]|1[0-8])|D)$'),
    trips        smallint NOT NULL CHECK (trips > 0),
    min_age      smallint CHECK (min_age > 0),
    valid_from   date NOT NULL CHECK (extract(day FROM valid_from) = 1),
    valid_to     date CHECK (extract(day FROM valid_to) = 1),
    CHECK (valid_to IS NULL OR valid_to > valid_from),
    CHECK ((criterion = 'older_adult') = (min_age IS NOT NULL)),
    UNIQUE NULLS NOT DISTINCT (criterion, sisben_group, valid_from)
);

-- Since February 2025 Bogotá loads monthly free trips ("pasajes gratis") on personalised
-- TuLlave cards instead of the earlier fare discounts, under the Ingreso Mínimo Garantizado
-- strategy (Acuerdo Distrital 031 de 2025). The published table:
--
--   beneficiary                 | Sisbén A | B  | C1-C9 | C10-C18 | D | no Sisbén
--   person with a disability    |       12 | 11 |     8 |       5 | 2 | 1
--   older adult (62 or more)    |        8 |  6 |     3 |       2 | 1 | 1
--   extreme / moderate poverty  |        7 |  5 |     - |       - | - | -
--
-- Poverty is Sisbén A (extreme) or B (moderate). Several criteria: the largest number. Not
-- cumulative: what is unused at the month's end lapses.
--   Valora Analitik, 2025-08-13
--     https://www.valoraanalitik.com/pasajes-gratis-en-transmilenio-en-agosto-quienes-aplican-y-como-acceder-al-beneficio/
--   Noticias Caracol, 2025-08-12
--     https://www.noticiascaracol.com/colombia/bogota/estas-personas-tendran-pasajes-gratis-en-transmilenio-en-agosto-consulte-con-su-cedula-si-aplica-so35
--   Infobae, 2026-03-02
--     https://www.infobae.com/colombia/2026/03/02/iniciaron-las-recargas-de-pasajes-gratis-en-transmilenio-asi-puede-acceder-al-beneficio-durante-marzo-de-2026/
--   Noticias Caracol, February 2026 (the same table)
--     https://www.noticiascaracol.com/colombia/bogota/pasajes-gratis-en-transmilenio-consulte-con-su-cedula-si-es-beneficiario-en-febrero-2026-so35
--   La República, 2025-02 (the scheme replaces the differential fares from February 2025)
--     https://larepublica.pe/datos-lr/colombia/2025/02/01/pasajes-gratis-en-transmilenio-para-800000-ciudadanos-en-bogota-colombia-consulta-requisitos-y-como-acceder-al-beneficio-en-febrero-lrtmco-38140
--   Secretaría Distrital de Integración Social, 2025-02-14 (criteria; trips do not accumulate)
--     https://www.integracionsocial.gov.co/index.php/noticias/173-noticias-ingreso-minimo-garantizado/7136-hasta-cuando-puede-recargar-los-pasajes-gratis-de-transmilenio
-- (One source, Blu Radio 2025-09-08, adds "older than 16" to the poverty criterion; the table
-- above does not, so poverty has no min_age here.)
INSERT INTO benefit_rules (criterion, sisben_group, trips, min_age, valid_from)
SELECT r.criterion, g.sisben_group,
       CASE g.band WHEN 'A' THEN r.a WHEN 'B' THEN r.b WHEN 'C1-C9' THEN r.c_low
                   WHEN 'C10-C18' THEN r.c_high WHEN 'D' THEN r.d ELSE r.none END,
       r.min_age, DATE '2025-02-01'
FROM (VALUES ('disability', 12, 11, 8, 5, 2, 1, NULL::smallint),
             ('older_adult', 8, 6, 3, 2, 1, 1, 62),
             ('poverty', 7, 5, NULL, NULL, NULL, NULL, NULL))
     AS r (criterion, a, b, c_low, c_high, d, none, min_age)
CROSS JOIN (SELECT 'A' AS sisben_group, 'A' AS band UNION ALL SELECT 'B', 'B'
            UNION ALL SELECT 'C' || n, CASE WHEN n <= 9 THEN 'C1-C9' ELSE 'C10-C18' END
                      FROM generate_series(1, 18) n
            UNION ALL SELECT 'D', 'D' UNION ALL SELECT NULL, 'none') g
WHERE CASE g.band WHEN 'A' THEN r.a WHEN 'B' THEN r.b WHEN 'C1-C9' THEN r.c_low
                  WHEN 'C10-C18' THEN r.c_high WHEN 'D' THEN r.d ELSE r.none END IS NOT NULL;

-- Name search ignores accents and case. unaccent (every Latin diacritic and ligature, not only
-- Spanish ones) and pg_trgm (an index that serves a search for part of a name) are trusted
-- extensions: the database owner can create them without being a superuser; both ship with
-- PostgreSQL's contrib (the embedded PostgreSQL 18 and Debian's PostgreSQL 15 have them).
-- unaccent() itself is only STABLE (its dictionary could change), so the key goes through an
-- IMMUTABLE wrapper naming the dictionary; a changed unaccent.rules needs the keys rebuilt.
-- Each user keeps the key of their name (computed once per write, like stations.name_key):
-- a search then compares stored text instead of unaccenting every candidate row again.
CREATE EXTENSION IF NOT EXISTS unaccent;
CREATE EXTENSION IF NOT EXISTS pg_trgm;
DO $$
DECLARE
    v_unaccent text := (SELECT n.nspname FROM pg_extension e
                        JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'unaccent');
    v_trgm text := (SELECT n.nspname FROM pg_extension e
                    JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pg_trgm');
BEGIN
    EXECUTE format($f$
        CREATE FUNCTION public.fold_name(p_text text) RETURNS text
        LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $b$
            SELECT lower(%1$I.unaccent(%2$L::regdictionary, p_text))
        $b$ $f$, v_unaccent, v_unaccent || '.unaccent');
    ALTER TABLE public.users ADD COLUMN name_key text NOT NULL
        GENERATED ALWAYS AS (public.fold_name(full_name)) STORED;
    EXECUTE format('CREATE INDEX users_name_key_idx ON public.users USING gin (name_key %I.gin_trgm_ops)',
                   v_trgm);
END $$;

-- Personalising an anonymous card gives it an owner from that moment on: an owner's
-- registration precedes personalised_at (for a card issued personalised, issued_at).
ALTER TABLE cards ADD COLUMN personalised_at timestamptz;

-- The hotlist: cards that stopped being usable, and the changes after a time (the status
-- history has its index on changed_at since 0006; replacements are found by the new card's
-- issue time). Both indexes are partial: a balance update of a card changes neither
-- predicate nor key, so it stays a HOT update.
CREATE INDEX cards_refused_idx ON cards (card_id)
    WHERE status IN ('blocked', 'lost') OR replaced_by IS NOT NULL;
CREATE INDEX cards_replacement_idx ON cards (issued_at) WHERE replaces IS NOT NULL;
-- a refused card's latest status change
CREATE INDEX card_status_changes_card_idx ON card_status_changes (card_id, changed_at);

-- New audited actions and admin keys, keeping every value the checks already allow.
DO $$
DECLARE
    v_check record;
    v_values text[];
BEGIN
    FOR v_check IN SELECT * FROM (VALUES
            ('audit_log', 'audit_log_action_check', 'action', ARRAY['user_update', 'personalise']),
            ('admin_keys', 'admin_keys_operation_check', 'operation',
             ARRAY['user_update', 'personalise'])) AS c (tab, name, col, extra) LOOP
        SELECT array_agg(DISTINCT m[1] ORDER BY m[1]) INTO v_values
        FROM pg_constraint c, regexp_matches(pg_get_constraintdef(c.oid), '''([a-z_]+)''', 'g') m
        WHERE c.conrelid = ('public.' || v_check.tab)::regclass AND c.conname = v_check.name;
        SELECT array_agg(DISTINCT v ORDER BY v) INTO v_values
        FROM unnest(v_values || v_check.extra) v;
        EXECUTE format('ALTER TABLE public.%I DROP CONSTRAINT %I, ADD CONSTRAINT %I CHECK (%I = ANY (%L::text[]))',
                       v_check.tab, v_check.name, v_check.name, v_check.col, v_values);
    END LOOP;
END $$;

-- users add takes the eligibility too (sql/functions/12_lifecycle.sql).
DROP FUNCTION IF EXISTS user_add(text, text, text, text);
