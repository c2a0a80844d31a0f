-- Migration ${version}: ${title}
--
-- Created: ${date}
-- Write the change below `-- migrate:up` and the SQL that undoes it below
-- `-- migrate:down`.  Each migration runs in its own transaction.

-- migrate:up


-- migrate:down

