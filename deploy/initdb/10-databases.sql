-- One database per service on one PostgreSQL server.
CREATE DATABASE jixiao_plans;
CREATE DATABASE jixiao_indicators;
CREATE DATABASE jixiao_inspections;
CREATE DATABASE jixiao_reviews;
CREATE DATABASE jixiao_aggregator;
