-- docker-compose.yml: run once by the MariaDB image on the primary's first start (replicated to
-- the replica). The application user may read the replica's lag, as scripts/mariadb grants.
GRANT SLAVE MONITOR ON *.* TO 'redpacket'@'%';
GRANT ALL PRIVILEGES ON `redpacket%`.* TO 'redpacket'@'%';
